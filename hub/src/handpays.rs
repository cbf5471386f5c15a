//! The handpay workflow: a handpay the machine reports (pending) is verified by an attendant,
//! approved by a second person with the supervisor role, and paid — which resets the machine
//! (LP 94). Who did each step and when is kept with it.
//!
//! The handpay itself comes from the `handpays` projection (the machine's own reports); the
//! people's steps are kept apart, in the `handpay_actions` tree (`edge/device/seq` → [`Steps`],
//! JSON), written durably before the answer.
//!
//! Invariants: steps happen in order (verify → approve → pay), each once; the approver is never
//! the verifier; a handpay the machine reset without the workflow says so
//! (`reset_at_machine`) instead of passing for paid.

use std::sync::Mutex;

use outpost_domain::projection::{self, Handpay, decode};
use serde::{Deserialize, Serialize};

/// The tree holding these records (the MSSQL sink watches it).
pub(crate) const TREE: &str = "handpay_actions";

/// People's steps on one handpay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Steps {
    pub verified_by: Option<String>,
    pub verified_us: Option<i64>,
    pub approved_by: Option<String>,
    pub approved_us: Option<i64>,
    pub paid_by: Option<String>,
    pub paid_us: Option<i64>,
    /// The `handpay_reset` command the payment issued.
    pub reset_command: Option<String>,
    /// Notes, in order, each with who wrote it.
    pub notes: Vec<String>,
}

/// Where a handpay is.
pub fn state(handpay: &Handpay, steps: &Steps) -> &'static str {
    match (steps, handpay.reset_us) {
        (s, _) if s.paid_by.is_some() => "paid",
        (_, Some(_)) => "reset_at_machine",
        (s, None) if s.approved_by.is_some() => "approved",
        (s, None) if s.verified_by.is_some() => "verified",
        _ => "pending",
    }
}

/// Why a step was refused.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("no handpay {0} (ids are edge/device/seq, as GET /api/v1/handpays lists them)")]
    Unknown(String),
    #[error("handpay {id} is {state}: {needed}")]
    OutOfOrder {
        id: String,
        state: &'static str,
        needed: &'static str,
    },
    #[error("handpay {id} was verified by {by}: a second person must approve it")]
    SamePerson { id: String, by: String },
    #[error("handpay store: {0}")]
    Store(String),
}

/// The workflow's store.
pub struct Handpays {
    db: sled::Db,
    steps: sled::Tree,
    /// One step at a time, so two people cannot both take the same step.
    lock: Mutex<()>,
}

impl std::fmt::Debug for Handpays {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handpays").finish_non_exhaustive()
    }
}

/// A step to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Verify,
    Approve,
    Pay,
}

impl Handpays {
    pub fn open(db: &sled::Db) -> Result<Self, sled::Error> {
        Ok(Self {
            db: db.clone(),
            steps: db.open_tree(TREE)?,
            lock: Mutex::new(()),
        })
    }

    fn steps_of(&self, id: &str) -> Result<Steps, StepError> {
        match self
            .steps
            .get(id)
            .map_err(|e| StepError::Store(e.to_string()))?
        {
            Some(v) => serde_json::from_slice(&v).map_err(|e| StepError::Store(e.to_string())),
            None => Ok(Steps::default()),
        }
    }

    /// Every handpay with its steps, newest first.
    pub fn list(&self) -> Result<Vec<(Handpay, Steps)>, StepError> {
        let tree = crate::projections::tree(&self.db, projection::HANDPAYS)
            .map_err(|e| StepError::Store(e.to_string()))?;
        let mut out = Vec::new();
        for entry in tree.scan_prefix(b"h") {
            let (key, value) = entry.map_err(|e| StepError::Store(e.to_string()))?;
            let handpay: Handpay = decode(projection::HANDPAYS, &key, &value)
                .map_err(|e| StepError::Store(e.to_string()))?;
            let steps = self.steps_of(&handpay.id())?;
            out.push((handpay, steps));
        }
        out.sort_by_key(|(h, _)| std::cmp::Reverse(h.pending_us));
        Ok(out)
    }

    /// One handpay.
    pub fn get(&self, id: &str) -> Result<(Handpay, Steps), StepError> {
        let mut parts = id.rsplitn(2, '/');
        let seq: u64 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| StepError::Unknown(id.to_owned()))?;
        let (edge, device) = parts
            .next()
            .and_then(|rest| rest.split_once('/'))
            .ok_or_else(|| StepError::Unknown(id.to_owned()))?;
        let tree = crate::projections::tree(&self.db, projection::HANDPAYS)
            .map_err(|e| StepError::Store(e.to_string()))?;
        let key = projection::handpay_key(edge, device, seq);
        let value = tree
            .get(&key)
            .map_err(|e| StepError::Store(e.to_string()))?
            .ok_or_else(|| StepError::Unknown(id.to_owned()))?;
        let handpay: Handpay = decode(projection::HANDPAYS, &key, &value)
            .map_err(|e| StepError::Store(e.to_string()))?;
        Ok((handpay, self.steps_of(id)?))
    }

    /// Takes `step` on handpay `id` for `by`; `reset_command` is the command a payment issued.
    pub fn take(
        &self,
        id: &str,
        step: Step,
        by: &str,
        note: &str,
        now_us: i64,
        reset_command: Option<String>,
    ) -> Result<(Handpay, Steps), StepError> {
        let _one = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (handpay, mut steps) = self.get(id)?;
        let now_state = state(&handpay, &steps);
        let out_of_order = |needed| StepError::OutOfOrder {
            id: id.to_owned(),
            state: now_state,
            needed,
        };
        match step {
            Step::Verify => {
                if now_state != "pending" {
                    return Err(out_of_order("only a pending handpay is verified"));
                }
                steps.verified_by = Some(by.to_owned());
                steps.verified_us = Some(now_us);
            }
            Step::Approve => {
                if now_state != "verified" {
                    return Err(out_of_order(
                        "an attendant verifies it before it is approved",
                    ));
                }
                if steps.verified_by.as_deref() == Some(by) {
                    return Err(StepError::SamePerson {
                        id: id.to_owned(),
                        by: by.to_owned(),
                    });
                }
                steps.approved_by = Some(by.to_owned());
                steps.approved_us = Some(now_us);
            }
            Step::Pay => {
                if now_state != "approved" {
                    return Err(out_of_order("it is approved before it is paid"));
                }
                steps.paid_by = Some(by.to_owned());
                steps.paid_us = Some(now_us);
                steps.reset_command = reset_command;
            }
        }
        if !note.is_empty() {
            steps.notes.push(format!("{by}: {note}"));
        }
        let bytes = serde_json::to_vec(&steps).map_err(|e| StepError::Store(e.to_string()))?;
        self.steps
            .insert(id, bytes)
            .map_err(|e| StepError::Store(e.to_string()))?;
        self.db
            .flush()
            .map_err(|e| StepError::Store(e.to_string()))?;
        tracing::info!(handpay = %id, ?step, by, note, "handpay step");
        Ok((handpay, steps))
    }

    /// Checks that `step` could be taken now, without taking it (the payment issues its reset
    /// command first).
    pub fn check(&self, id: &str, step: Step) -> Result<(), StepError> {
        let (handpay, steps) = self.get(id)?;
        let now = state(&handpay, &steps);
        let needed = match step {
            Step::Verify => "pending",
            Step::Approve => "verified",
            Step::Pay => "approved",
        };
        if now != needed {
            return Err(StepError::OutOfOrder {
                id: id.to_owned(),
                state: now,
                needed: "the steps go verify, approve (a second person), pay",
            });
        }
        Ok(())
    }
}
