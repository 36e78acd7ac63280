//! Random-token documents, kept in an unlinked temporary file rather than in memory.
//!
//! They cannot be rendered on demand as the `"hi"` documents are: each is fitted to its
//! exact length with the tokenizer, and tokenizer work has no place while requests are
//! sent. Held in memory, 1,000 documents of 100k tokens took 918 MB; spooled, memory
//! grows with the requests in flight again, and a prompt is one positional read (from
//! the page cache, as a rule) before its request is stamped sent.
//!
//! The file is created with `tempfile::tempfile()` in `$TMPDIR`, already unlinked: it
//! disappears with the process, however the process ends.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};

/// Documents appended in order, read back by index.
pub(crate) struct Spool {
    file: File,
    /// (offset, length in bytes) of each document.
    index: Vec<(u64, usize)>,
    end: u64,
    /// A failed read was reported once already.
    warned: AtomicBool,
}

impl Spool {
    pub(crate) fn new() -> io::Result<Self> {
        Ok(Self {
            file: tempfile::tempfile()?,
            index: Vec::new(),
            end: 0,
            warned: AtomicBool::new(false),
        })
    }

    pub(crate) fn push(&mut self, text: &str) -> io::Result<()> {
        self.file.write_all(text.as_bytes())?;
        self.index.push((self.end, text.len()));
        self.end += text.len() as u64;
        Ok(())
    }

    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    pub(crate) fn len_bytes(&self, id: usize) -> Option<usize> {
        self.index.get(id).map(|&(_, len)| len)
    }

    pub(crate) fn total_bytes(&self) -> u64 {
        self.end
    }

    /// Appends document `id` to `buf`; `Ok(false)` if there is no such document.
    pub(crate) fn read_into(&self, id: usize, buf: &mut String) -> io::Result<bool> {
        let Some(&(offset, len)) = self.index.get(id) else {
            return Ok(false);
        };
        // Read straight into `buf`'s bytes (no copy of a half-megabyte document).
        let mut bytes = std::mem::take(buf).into_bytes();
        let start = bytes.len();
        bytes.resize(start + len, 0);
        let read = match self.file.read_exact_at(&mut bytes[start..], offset) {
            Ok(()) => String::from_utf8(bytes).map_err(|e| {
                // Only what this process wrote is read back, and it was valid UTF-8.
                let not_utf8 = io::Error::new(io::ErrorKind::InvalidData, "not UTF-8");
                (e.into_bytes(), not_utf8)
            }),
            Err(e) => Err((bytes, e)),
        };
        match read {
            Ok(text) => {
                *buf = text;
                Ok(true)
            }
            Err((mut bytes, e)) => {
                // Give the caller back what it had.
                bytes.truncate(start);
                *buf = String::from_utf8(bytes).unwrap_or_default();
                Err(e)
            }
        }
    }

    /// [`Spool::read_into`] for the request path, which cannot fail: a read error (the
    /// disk under `$TMPDIR` failing mid-run) is reported on stderr once, and the request
    /// goes out without its document.
    pub(crate) fn append(&self, id: usize, buf: &mut String) -> bool {
        match self.read_into(id, buf) {
            Ok(found) => found,
            Err(e) => {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    eprintln!(
                        "warning: reading document {id} back from the temporary file failed \
                         ({e}); requests whose document cannot be read are sent without it"
                    );
                }
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_come_back_byte_for_byte() {
        let mut s = Spool::new().unwrap();
        for text in ["0 héllo", "", "2 a b c"] {
            s.push(text).unwrap();
        }
        assert_eq!((s.len(), s.total_bytes()), (3, 15));
        let mut buf = String::from("pre ");
        assert!(s.append(0, &mut buf));
        assert_eq!(buf, "pre 0 héllo");
        assert!(s.append(2, &mut buf));
        assert_eq!(buf, "pre 0 héllo2 a b c");
        assert!(!s.append(3, &mut buf));
        assert_eq!(s.len_bytes(0), Some(8));
    }
}
