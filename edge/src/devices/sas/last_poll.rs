//! The last general poll a SAS line sent, remembered across a crash of the edge process.
//!
//! SAS has no explicit acknowledgement: a reply is acknowledged by the host's next poll. The line
//! stores an exception durably before it sends that next poll, but a process that dies between
//! reading a reply and storing it leaves the reply acknowledged by nobody — until the next
//! process starts with the sync poll (`80`), which acknowledges it blindly, and it is lost. So
//! before each frame the line writes here which EGM a general poll is going to (or that none is:
//! any other frame, or the reply is handled), with the outbox's durable sequence at that moment.
//! A new process whose outbox holds no event of that EGM after that sequence repeats that general
//! poll first ([`outpost_sas::Line::resume`]): the EGM takes it as an implied NACK and sends the
//! reply again. If the outbox does hold one, the reply was stored before the crash: the new
//! process starts with the sync poll, which acknowledges it, and nothing is stored twice.
//!
//! Invariants:
//! - Nine bytes at offset 0: the address of a general poll whose reply is not yet handled (0 for
//!   none), then the outbox's durable sequence when it was sent (big-endian; `u64::MAX` when the
//!   outbox was not open: then the poll is repeated).
//! - Written with `pwrite`, never synced: it survives a crash of the process (the page cache
//!   holds it), not a power cut, after which the line starts with the sync poll as before. A
//!   stale address is harmless: a general poll the EGM did not just receive is only a poll.
//! - The EGM's events come only from its line, one poll at a time, each durable before the next
//!   poll: so an event of that EGM after the recorded sequence can only be the reply's.
//! - Failing to read or write it never stops the line (it is logged once).

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A general poll sent: to whom, and the outbox's durable sequence just before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentPoll {
    pub address: u8,
    pub durable_seq: u64,
}

pub struct LastPoll {
    file: Option<std::fs::File>,
    path: PathBuf,
    written: Option<[u8; 9]>,
}

fn encode(poll: Option<SentPoll>) -> [u8; 9] {
    let mut bytes = [0u8; 9];
    if let Some(poll) = poll {
        bytes[0] = poll.address;
        bytes[1..].copy_from_slice(&poll.durable_seq.to_be_bytes());
    }
    bytes
}

impl LastPoll {
    /// Opens (creating) the record at `path`; returns it and the poll it held, if any.
    pub fn open(path: &Path, line: &str) -> (Self, Option<SentPoll>) {
        let opened = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| {
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(path)
            });
        let file = match opened {
            Ok(file) => Some(file),
            Err(err) => {
                tracing::warn!(line, path = %path.display(), %err, "cannot keep the sas line's last poll; a restart will sync blindly");
                None
            }
        };
        let mut bytes = [0u8; 9];
        let read = file
            .as_ref()
            .and_then(|f| f.read_at(&mut bytes, 0).ok())
            .filter(|&n| n == bytes.len());
        let held = read.and_then(|_| {
            let durable_seq = u64::from_be_bytes(bytes[1..].try_into().ok()?);
            (bytes[0] != 0).then_some(SentPoll {
                address: bytes[0],
                durable_seq,
            })
        });
        let record = Self {
            file,
            path: path.to_owned(),
            written: read.map(|_| bytes),
        };
        (record, held)
    }

    /// Records that a general poll is about to be sent (`Some`), or that no reply is
    /// outstanding (`None`).
    pub fn set(&mut self, poll: Option<SentPoll>) {
        let bytes = encode(poll);
        if self.written == Some(bytes) {
            return;
        }
        let Some(file) = &self.file else {
            return;
        };
        match file.write_all_at(&bytes, 0) {
            Ok(()) => self.written = Some(bytes),
            Err(err) => {
                tracing::warn!(path = %self.path.display(), %err, "cannot record the sas line's last poll; a restart will sync blindly");
                self.file = None;
            }
        }
    }
}

/// The address a frame general-polls, if it is a general poll to one EGM.
pub fn general_poll_address(frame: &[u8]) -> Option<u8> {
    match frame {
        [byte] if byte & 0x80 != 0 && byte & 0x7F != 0 => Some(byte & 0x7F),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_unhandled_general_poll_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sas/line-1.last-poll");
        let (mut record, held) = LastPoll::open(&path, "line-1");
        assert_eq!(held, None);
        let sent = SentPoll {
            address: 3,
            durable_seq: 41,
        };
        record.set(Some(sent));
        drop(record);
        let (mut record, held) = LastPoll::open(&path, "line-1");
        assert_eq!(held, Some(sent));
        record.set(None);
        assert_eq!(LastPoll::open(&path, "line-1").1, None);
    }

    #[test]
    fn a_short_or_empty_record_holds_no_poll() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("line-1.last-poll");
        std::fs::write(&path, [3u8]).unwrap();
        assert_eq!(LastPoll::open(&path, "line-1").1, None);
    }

    #[test]
    fn only_a_general_poll_to_one_egm_is_one() {
        assert_eq!(general_poll_address(&[0x81]), Some(1));
        assert_eq!(general_poll_address(&[0x80]), None, "the global sync poll");
        assert_eq!(
            general_poll_address(&[0x01, 0x1A, 0x00, 0x00]),
            None,
            "a long poll"
        );
    }
}
