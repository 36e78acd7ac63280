//! A trace file read as it is replayed, so that replaying it needs memory for what is in
//! flight, not for the whole trace.
//!
//! [`TraceSource::open`] reads the file once to check every line (a bad line is reported
//! before any work starts) and whether its requests are in arrival order. In order, each
//! replay reads it again, one request at a time; out of order, it is held whole and sorted,
//! as [`Trace::read`] does.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::format::{Trace, TraceError, TraceFormat, TraceLines, TraceRequest};

/// A checked trace file, ready to be replayed any number of times.
#[derive(Debug, Clone)]
pub struct TraceSource {
    format: TraceFormat,
    requests: usize,
    held: Option<Trace>,
    path: PathBuf,
}

impl TraceSource {
    /// Checks `path` (in `format`, or detected): every line a request, at least one.
    pub fn open(path: &Path, format: Option<TraceFormat>) -> Result<TraceSource, TraceError> {
        let mut lines = TraceLines::new(reader(path)?, format);
        let (mut requests, mut last_ms, mut in_order) = (0usize, f64::NEG_INFINITY, true);
        for request in lines.by_ref() {
            let r = request?;
            in_order &= r.arrival_ms >= last_ms;
            last_ms = r.arrival_ms;
            requests += 1;
        }
        let format = lines
            .format()
            .filter(|_| requests > 0)
            .ok_or(TraceError::Empty)?;
        let held = if in_order {
            None
        } else {
            Some(Trace::read(path, Some(format))?)
        };
        Ok(TraceSource {
            format,
            requests,
            held,
            path: path.to_path_buf(),
        })
    }

    /// The trace's format.
    pub fn format(&self) -> TraceFormat {
        self.format
    }

    /// How many requests it has.
    pub fn len(&self) -> usize {
        self.requests
    }

    /// Whether it has none (never, once opened).
    pub fn is_empty(&self) -> bool {
        self.requests == 0
    }

    /// Whether it is held in memory (its file was not in arrival order).
    pub fn is_held(&self) -> bool {
        self.held.is_some()
    }

    /// Its requests in arrival order, read again from the file unless held. A read error
    /// (the file changed since it was opened) ends the requests and is kept in `error`.
    pub fn requests<'a>(
        &'a self,
        error: &'a mut Option<TraceError>,
    ) -> Result<Box<dyn Iterator<Item = TraceRequest> + 'a>, TraceError> {
        if let Some(trace) = &self.held {
            return Ok(Box::new(trace.requests.iter().cloned()));
        }
        let lines = TraceLines::new(reader(&self.path)?, Some(self.format));
        Ok(Box::new(lines.map_while(move |r| match r {
            Ok(r) => Some(r),
            Err(e) => {
                *error = Some(e);
                None
            }
        })))
    }
}

fn reader(path: &Path) -> Result<BufReader<std::fs::File>, TraceError> {
    let file = std::fs::File::open(path).map_err(|source| TraceError::Io { source })?;
    Ok(BufReader::new(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        f
    }

    /// The first hash id of each request, in the order the source gives them.
    fn first_ids(source: &TraceSource) -> Vec<u64> {
        let mut error = None;
        let ids = source
            .requests(&mut error)
            .unwrap()
            .map(|r| r.hash_ids[0])
            .collect();
        assert!(error.is_none(), "{error:?}");
        ids
    }

    const IN_ORDER: &str = "{\"timestamp\": 3, \"input_length\": 1, \"output_length\": 1, \"hash_ids\": [1]}\n\n{\"timestamp\": 9, \"input_length\": 1, \"output_length\": 1, \"hash_ids\": [2]}\n";

    #[test]
    fn a_trace_in_order_is_read_again_each_time() {
        let f = file(IN_ORDER);
        let source = TraceSource::open(f.path(), None).unwrap();
        assert!(!source.is_held());
        assert_eq!((source.format(), source.len()), (TraceFormat::Mooncake, 2));
        for _ in 0..2 {
            assert_eq!(first_ids(&source), [1, 2]);
        }
    }

    #[test]
    fn a_trace_out_of_order_is_held_sorted() {
        let f = file("{\"timestamp\": 9, \"input_length\": 1, \"output_length\": 1, \"hash_ids\": [1]}\n{\"timestamp\": 3, \"input_length\": 1, \"output_length\": 1, \"hash_ids\": [2]}\n");
        let source = TraceSource::open(f.path(), None).unwrap();
        assert!(source.is_held());
        assert_eq!(first_ids(&source), [2, 1]);
    }

    #[test]
    fn a_bad_line_is_found_when_opening_and_a_change_later_is_kept() {
        let f = file(&format!("{IN_ORDER}not json\n"));
        let e = TraceSource::open(f.path(), None).unwrap_err().to_string();
        assert!(e.contains("line 4"), "{e}");
        assert!(matches!(
            TraceSource::open(file("\n").path(), None),
            Err(TraceError::Empty)
        ));

        let f = file(IN_ORDER);
        let source = TraceSource::open(f.path(), None).unwrap();
        std::fs::write(f.path(), format!("{IN_ORDER}not json\n")).unwrap();
        let mut error = None;
        assert_eq!(source.requests(&mut error).unwrap().count(), 2);
        assert!(error.unwrap().to_string().contains("line 4"));
    }
}
