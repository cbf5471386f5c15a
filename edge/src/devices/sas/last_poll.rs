//! The last general poll a SAS line sent, remembered across a crash of the edge process.
//!
//! SAS has no explicit acknowledgement: a reply is acknowledged by the host's next poll. The line
//! stores an exception durably before it sends that next poll, but a process that dies between
//! reading a reply and storing it leaves the reply acknowledged by nobody — until the next
//! process starts with the sync poll (`80`), which acknowledges it blindly, and it is lost. So
//! before each frame the line writes here which EGM a general poll is going to (or that none is:
//! any other frame, or the reply is handled), and a new process repeats that general poll first
//! ([`outpost_sas::Line::resume`]): the EGM takes it as an implied NACK and sends the reply again.
//!
//! Invariants:
//! - One byte at offset 0: the address of a general poll whose reply is not yet handled, or 0.
//! - Written with `pwrite`, never synced: it survives a crash of the process (the page cache
//!   holds it), not a power cut, after which the line starts with the sync poll as before. A
//!   stale address is harmless: a general poll the EGM did not just receive is only a poll.
//! - A crash after the reply was stored but before the 0 is written makes the reply stored
//!   twice: at least once, never lost.
//! - Failing to read or write it never stops the line (it is logged once).

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub struct LastPoll {
    file: Option<std::fs::File>,
    path: PathBuf,
    written: Option<u8>,
}

impl LastPoll {
    /// Opens (creating) the record at `path`; returns it and the address it held, if any.
    pub fn open(path: &Path, line: &str) -> (Self, Option<u8>) {
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
        let mut byte = [0u8];
        let held = file
            .as_ref()
            .and_then(|f| f.read_at(&mut byte, 0).ok())
            .filter(|&n| n == 1)
            .map(|_| byte[0])
            .filter(|&a| a != 0);
        let record = Self {
            file,
            path: path.to_owned(),
            written: held,
        };
        (record, held)
    }

    /// Records that a general poll to `address` is about to be sent (`Some`), or that no reply
    /// is outstanding (`None`).
    pub fn set(&mut self, address: Option<u8>) {
        let byte = address.unwrap_or(0);
        if self.written == Some(byte) {
            return;
        }
        let Some(file) = &self.file else {
            return;
        };
        match file.write_at(&[byte], 0) {
            Ok(_) => self.written = Some(byte),
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
    fn the_address_of_an_unhandled_general_poll_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sas/line-1.last-poll");
        let (mut record, held) = LastPoll::open(&path, "line-1");
        assert_eq!(held, None);
        record.set(Some(3));
        drop(record);
        let (mut record, held) = LastPoll::open(&path, "line-1");
        assert_eq!(held, Some(3));
        record.set(None);
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
