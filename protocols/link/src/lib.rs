//! `outpost-link`: the edge↔hub wire protocol, sans-IO (frames, handshake, versioning, event and
//! command types). Empty until the delivery work lands; the crate exists so the workspace layout
//! matches DESIGN.md.
