//! `ephemera-devcluster`: a local Kubernetes API server for tests and the dev stack, held to a real
//! kube-apiserver by the differential suite in `tests/`. See this crate's README for what it serves
//! and where it still differs from Kubernetes.

pub mod audit;
pub mod auth;
mod cluster;
pub mod controllers;
mod gc;
pub mod http;
pub mod kubelet;
pub mod merge;
pub mod meta;
pub mod proxy;
pub mod rbac;
pub mod resources;
pub mod schema;
pub mod store;
pub mod testing;
pub mod tls;

pub use cluster::{serve_tls, Config, DevCluster, KubeletSettings, StartError};
