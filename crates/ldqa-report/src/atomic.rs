//! Replacing a file whole or not at all: the new content goes to a temporary file beside
//! it, is flushed to disk, then renamed over it. A full disk or a crash leaves the earlier
//! file as it was (reliability review C7: a full disk truncated an earlier result to 0
//! bytes), never a half-written one.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path`, atomically (the temporary file is in the same folder, so the
/// rename never crosses file systems). A path that is not a regular file (`/dev/stdout`, a
/// FIFO) is written directly: renaming over it would replace the device or pipe.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        return std::fs::write(path, bytes);
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".ldqa-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        write_atomically(&path, b"old").unwrap();
        write_atomically(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn a_device_is_written_not_replaced() {
        write_atomically(Path::new("/dev/null"), b"x").unwrap();
        assert!(!std::fs::metadata("/dev/null").unwrap().is_file());
    }

    /// A full disk keeps the earlier file whole. Needs a 64 KiB tmpfs, so root.
    #[cfg(target_os = "linux")]
    #[test]
    #[ignore = "needs root to mount a 64 KiB tmpfs; scripts/test runs as root in CI"]
    fn a_full_disk_keeps_the_earlier_file() {
        let dir = tempfile::tempdir().unwrap();
        let mount = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(mount.success(), "mount -t tmpfs failed: run as root");
        let path = dir.path().join("r.json");
        let result = (|| {
            write_atomically(&path, b"the earlier result")?;
            let filler = vec![b'x'; 60 << 10];
            let _ = std::fs::write(dir.path().join("filler"), &filler);
            write_atomically(&path, &vec![b'y'; 32 << 10])
        })();
        let kept = std::fs::read(&path);
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        let _ = std::process::Command::new("umount")
            .arg(dir.path())
            .status();
        assert!(result.is_err(), "the disk was not full");
        assert_eq!(kept.unwrap(), b"the earlier result");
        assert_eq!(leftovers, 2, "r.json and the filler, no temporary file");
    }
}
