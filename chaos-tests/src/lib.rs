//! `chaos-tests`: deterministic simulations and real-process fault scenarios with an invariant
//! checker. Empty until the delivery work lands; today the real-process tests live in
//! `sim/tests/` next to the harness they use.
