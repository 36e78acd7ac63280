//! Hardware probing: GPUs from NVML (dlopen'ed at run time, so no link-time dependency and no
//! error without a driver), else `nvidia-smi`; host RAM from `/proc/meminfo`; pinnable memory from
//! `RLIMIT_MEMLOCK`.
//!
//! NVML is opened by hand through `libc::dlopen` (six entry points) rather than with
//! `nvml-wrapper`: it avoids a second `thiserror` major and ~12 s of build for what is a handful of
//! calls. Signatures from NVIDIA's `nvml.h` (NVML API reference, "Device Queries").

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::path::Path;

use serde::Serialize;

/// One GPU as the driver reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DetectedGpu {
    /// Device name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// Total memory per the driver, bytes (more than torch reports; see the catalog).
    pub memory_total_bytes: u64,
}

/// Where the GPU list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuSource {
    /// `libnvidia-ml.so.1`.
    Nvml,
    /// `nvidia-smi --query-gpu`.
    NvidiaSmi,
    /// Nothing found.
    None,
}

/// GPUs via NVML, else `nvidia-smi`; empty when neither is there.
pub fn detect_gpus() -> (Vec<DetectedGpu>, GpuSource) {
    if let Some(g) = nvml_gpus("libnvidia-ml.so.1") {
        if !g.is_empty() {
            return (g, GpuSource::Nvml);
        }
    }
    if let Some(g) = nvidia_smi_gpus() {
        if !g.is_empty() {
            return (g, GpuSource::NvidiaSmi);
        }
    }
    (Vec::new(), GpuSource::None)
}

#[repr(C)]
struct NvmlMemory {
    total: u64,
    free: u64,
    used: u64,
}

type InitFn = unsafe extern "C" fn() -> c_int;
type CountFn = unsafe extern "C" fn(*mut c_uint) -> c_int;
type HandleFn = unsafe extern "C" fn(c_uint, *mut *mut c_void) -> c_int;
type NameFn = unsafe extern "C" fn(*mut c_void, *mut c_char, c_uint) -> c_int;
type MemFn = unsafe extern "C" fn(*mut c_void, *mut NvmlMemory) -> c_int;

/// Query NVML from the shared library `lib`; `None` when it cannot be loaded or initialised.
#[allow(
    unsafe_code,
    reason = "NVML through dlopen/dlsym; each block has its SAFETY comment"
)]
pub fn nvml_gpus(lib: &str) -> Option<Vec<DetectedGpu>> {
    let name = std::ffi::CString::new(lib).ok()?;
    // SAFETY: dlopen with a valid C string; a null return is handled.
    let h = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if h.is_null() {
        return None;
    }
    let sym = |s: &CStr| {
        // SAFETY: h is a live handle from dlopen; s is NUL-terminated.
        let p = unsafe { libc::dlsym(h, s.as_ptr()) };
        (!p.is_null()).then_some(p)
    };
    let out = (|| {
        let (init, count, handle, dname, mem, shutdown) = (
            sym(c"nvmlInit_v2")?,
            sym(c"nvmlDeviceGetCount_v2")?,
            sym(c"nvmlDeviceGetHandleByIndex_v2")?,
            sym(c"nvmlDeviceGetName")?,
            sym(c"nvmlDeviceGetMemoryInfo")?,
            sym(c"nvmlShutdown")?,
        );
        // SAFETY: the symbols have these C signatures per nvml.h; every out-pointer is valid.
        unsafe {
            let init: InitFn = std::mem::transmute::<*mut c_void, InitFn>(init);
            let count: CountFn = std::mem::transmute::<*mut c_void, CountFn>(count);
            let handle: HandleFn = std::mem::transmute::<*mut c_void, HandleFn>(handle);
            let dname: NameFn = std::mem::transmute::<*mut c_void, NameFn>(dname);
            let mem: MemFn = std::mem::transmute::<*mut c_void, MemFn>(mem);
            let shutdown: InitFn = std::mem::transmute::<*mut c_void, InitFn>(shutdown);
            if init() != 0 {
                return None;
            }
            let mut n: c_uint = 0;
            let mut gpus = Vec::new();
            if count(&mut n) == 0 {
                for i in 0..n {
                    let mut dev: *mut c_void = std::ptr::null_mut();
                    if handle(i, &mut dev) != 0 {
                        continue;
                    }
                    let mut buf = [0 as c_char; 96];
                    let name = if dname(dev, buf.as_mut_ptr(), buf.len() as c_uint) == 0 {
                        CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned()
                    } else {
                        format!("GPU {i}")
                    };
                    let mut m = NvmlMemory {
                        total: 0,
                        free: 0,
                        used: 0,
                    };
                    if mem(dev, &mut m) == 0 {
                        gpus.push(DetectedGpu {
                            name,
                            memory_total_bytes: m.total,
                        });
                    }
                }
            }
            shutdown();
            Some(gpus)
        }
    })();
    // SAFETY: h came from dlopen and is closed once.
    unsafe { libc::dlclose(h) };
    out
}

fn nvidia_smi_gpus() -> Option<Vec<DetectedGpu>> {
    let out = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,memory.total",
            "--format=csv,noheader,nounits",
        ])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| parse_nvidia_smi(&String::from_utf8_lossy(&out.stdout)))
}

/// Parse `name, MiB` lines of `nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits`.
pub fn parse_nvidia_smi(text: &str) -> Vec<DetectedGpu> {
    text.lines()
        .filter_map(|l| {
            let (name, mib) = l.rsplit_once(',')?;
            let mib: u64 = mib.trim().parse().ok()?;
            Some(DetectedGpu {
                name: name.trim().to_string(),
                memory_total_bytes: mib << 20,
            })
        })
        .collect()
}

/// `MemAvailable` (else `MemFree`) of a `/proc/meminfo` text, in bytes.
pub fn parse_meminfo(text: &str) -> Option<u64> {
    let field = |key: &str| {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(':')?;
            let mut it = rest.split_whitespace();
            let n: u64 = it.next()?.parse().ok()?;
            match it.next() {
                Some("kB") => Some(n * 1024),
                None => Some(n),
                Some(_) => None,
            }
        })
    };
    field("MemAvailable").or_else(|| field("MemFree"))
}

/// Available host RAM from `/proc/meminfo`, bytes.
pub fn host_ram_available_bytes() -> Option<u64> {
    parse_meminfo(&std::fs::read_to_string(Path::new("/proc/meminfo")).ok()?)
}

/// The soft `RLIMIT_MEMLOCK` in **bytes** (getrlimit reports bytes; `ulimit -l` prints KiB,
/// which upstream mistakes for bytes). `None` = unlimited.
#[allow(unsafe_code, reason = "getrlimit(2), see the SAFETY comment")]
pub fn memlock_limit_bytes() -> Option<u64> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: r is a valid out-pointer.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut r) };
    if rc != 0 || r.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    Some(r.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_available_then_free() {
        let t =
            "MemTotal:       32768000 kB\nMemFree:         1000 kB\nMemAvailable:   16384000 kB\n";
        assert_eq!(parse_meminfo(t), Some(16_384_000 * 1024));
        assert_eq!(parse_meminfo("MemFree: 2 kB\n"), Some(2048));
        assert_eq!(parse_meminfo("MemTotal: 2 kB\n"), None);
        assert_eq!(parse_meminfo("MemAvailable: x kB\n"), None);
        // Every prefix parses or fails without panicking.
        for cut in 0..t.len() {
            let _ = parse_meminfo(&t[..cut]);
        }
    }

    #[test]
    fn nvml_absent_is_none_not_an_error() {
        assert_eq!(nvml_gpus("libnvidia-ml-that-does-not-exist.so.1"), None);
    }

    #[test]
    fn nvidia_smi_lines() {
        let g = parse_nvidia_smi(
            "NVIDIA H100 80GB HBM3, 81559\nNVIDIA H100 80GB HBM3, 81559\ngarbage\n",
        );
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].memory_total_bytes, 81_559 << 20);
    }

    #[test]
    #[allow(unsafe_code, reason = "getrlimit(2) into a local out-parameter")]
    fn memlock_is_bytes() {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut r) }, 0);
        let want = (r.rlim_cur != libc::RLIM_INFINITY).then_some(r.rlim_cur);
        assert_eq!(memlock_limit_bytes(), want);
    }
}
