//! `outpost-adb`: the ADB transport codec (both sides), sans-IO. Empty until the TV work lands;
//! the crate exists so the workspace layout matches DESIGN.md.
