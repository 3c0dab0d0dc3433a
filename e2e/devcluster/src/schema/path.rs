//! Field paths as apimachinery's `field.Path` prints them: `a.b`, `a[key]`, `a[0]`.

/// `path.Child(name)`.
pub(crate) fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// `path.Key(key)`.
pub(crate) fn key(path: &str, key: &str) -> String {
    format!("{path}[{key}]")
}

/// `path.Index(i)`.
pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}
