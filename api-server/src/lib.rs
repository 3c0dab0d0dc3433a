//! The Ephemera API server: REST, webhooks and live streams (filled in by the REST API issue).
