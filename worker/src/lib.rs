//! The Ephemera worker that runs inside each task Pod (filled in by the worker issue).
