//! `outpost-sas`: the SAS codec and host state machine, sans-IO. Empty until the slot-machine work
//! lands; the crate exists so the workspace layout matches DESIGN.md.
