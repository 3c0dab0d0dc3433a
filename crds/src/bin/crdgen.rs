//! Writes the generated CRD YAML into `crds/yaml/` and the Helm chart's copy,
//! `charts/ephemera/files/crds/` (or prints it with `--stdout`).

use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("yaml");
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/ephemera/files/crds");
    let stdout = std::env::args().any(|a| a == "--stdout");
    for crd in ephemera_crds::all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let text = ephemera_crds::yaml(&crd)?;
        if stdout {
            println!("---\n{text}");
        } else {
            std::fs::write(dir.join(format!("{name}.yaml")), &text)?;
            std::fs::write(chart.join(format!("{name}.yaml")), &text)?;
            eprintln!("wrote crds/yaml/{name}.yaml and charts/ephemera/files/crds/{name}.yaml");
        }
    }
    Ok(())
}
