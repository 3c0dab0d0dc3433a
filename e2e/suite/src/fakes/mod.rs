//! Test doubles for the providers that cannot be reached from here (Salesforce, GitHub). They
//! implement the real endpoints' contracts and verify real RS256 signatures and claims.

pub mod github;
pub mod jwt;
pub mod oidc;
pub mod salesforce;
