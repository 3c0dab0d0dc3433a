//! The local cluster's suites as one test binary (one link instead of four): the differential suite
//! against the real apiextensions-apiserver, kube-rs, kubectl, the kubelet with its images and runc.
//! Run one area with a filter, e.g. `cargo nextest run -p ephemera-devcluster differential::`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;
mod differential;
mod images;
mod kube_client;
mod kubectl;
mod kubelet;
mod python_client;
mod rbac;
mod runc;
mod workloads;
