//! The Task custom resource types shared by every Ephemera component (filled in by the Task CRD issue).
