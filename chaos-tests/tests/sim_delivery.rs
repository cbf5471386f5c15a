//! Deterministic simulation of the delivery path under loss, reordering, partitions and restarts
//! of both sides: every accepted event is committed exactly once, in order, without gaps.
//!
//! 200 seeds in four quarters (run in parallel by nextest). `OUTPOST_SIM_SEED=S` replays one seed
//! (in the first quarter's test); `OUTPOST_SIM_SEEDS=N` runs N seeds per quarter instead of 50.

use chaos_tests::{Scenario, simulate};

const PER_QUARTER: u64 = 50;

fn run_quarter(quarter: u64) {
    let seeds: Vec<u64> = match std::env::var("OUTPOST_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(seed) if quarter == 0 => vec![seed],
        Some(_) => return,
        None => {
            let per = std::env::var("OUTPOST_SIM_SEEDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(PER_QUARTER);
            (quarter * per..(quarter + 1) * per).collect()
        }
    };
    let mut failures = Vec::new();
    let (mut accepted, mut hub_restarts, mut edge_restarts, mut partitions) = (0, 0, 0, 0);
    let mut bulk = 0;
    for &seed in &seeds {
        match simulate(&Scenario::new(seed)) {
            Ok(outcome) => {
                accepted += outcome.accepted;
                bulk += outcome.bulk;
                hub_restarts += outcome.hub_restarts;
                edge_restarts += outcome.edge_restarts;
                partitions += outcome.partitions;
            }
            Err(violation) => {
                eprintln!("{violation}");
                failures.push(violation);
            }
        }
    }
    println!(
        "seeds {:?}: {accepted} events accepted, each committed exactly once, and {bulk} bulk payloads stored intact, through {hub_restarts} hub restarts, {edge_restarts} edge restarts and {partitions} partitions",
        seeds.first().zip(seeds.last())
    );
    assert!(
        failures.is_empty(),
        "{} of {} seeds broke the invariant; first: {}",
        failures.len(),
        seeds.len(),
        failures[0]
    );
}

#[test]
fn every_accepted_event_is_committed_exactly_once_seeds_000_049() {
    run_quarter(0);
}

#[test]
fn every_accepted_event_is_committed_exactly_once_seeds_050_099() {
    run_quarter(1);
}

#[test]
fn every_accepted_event_is_committed_exactly_once_seeds_100_149() {
    run_quarter(2);
}

#[test]
fn every_accepted_event_is_committed_exactly_once_seeds_150_199() {
    run_quarter(3);
}
