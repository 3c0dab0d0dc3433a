//! Live status for clients: every replica watches Tasks and fans each change out to its own
//! subscribers (WebSocket and SSE). No broker, no sticky sessions: a client can resume on any replica
//! with the last `seq` it saw, because the events live in the Task's status.

pub mod hub;
pub mod messages;
pub mod sse;
pub mod tickets;
pub mod ws;
