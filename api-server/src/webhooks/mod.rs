//! Webhooks into Tasks (`POST /webhooks/{namespace}/{trigger}`): a delivery is authenticated the way
//! its source signs it ([`verify`]), then the trigger's rules decide which Task it becomes.

pub mod verify;
