//! `ldqa catalog`: the GPUs and models ldqa knows without a network, with the figures its
//! plans and simulations use (usability finding 21).

use clap::{Args, ValueEnum};
use ldqa_specs::{catalog, KvDtype, GIB_BYTES};
use serde_json::json;

use crate::exit::ExitStatus;

/// Which list (no help per value: it would switch `--help` to clap's long layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Listing {
    // GPUs: memory, peaks, and where the simulator's step costs for them come from.
    Gpus,
    // Models: parameters, weights, KV bytes per token, context length.
    Models,
}

/// Arguments of `ldqa catalog`.
#[derive(Debug, Args)]
pub struct CatalogArgs {
    /// gpus (memory, peaks, where the step costs come from) or models (weights, KV bytes per token,
    /// context); both when not given.
    #[arg(value_enum)]
    listing: Option<Listing>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

/// Run `ldqa catalog`.
pub fn run(args: CatalogArgs) -> anyhow::Result<ExitStatus> {
    let mut out = String::new();
    if args.listing != Some(Listing::Models) {
        out.push_str(&gpus(args.json)?);
    }
    if args.listing.is_none() && !args.json {
        out.push('\n');
    }
    if args.listing != Some(Listing::Gpus) {
        out.push_str(&models(args.json));
    }
    crate::stdout::write(&out)?;
    Ok(ExitStatus::Success)
}

fn gpus(as_json: bool) -> anyhow::Result<String> {
    let mut out = String::new();
    if !as_json {
        out.push_str(&format!(
            "{:<12} {:>9} {:>12} {:>9} {:>10} {:>11}  {}\n",
            "gpu", "mem GiB", "BF16 TFLOP/s", "HBM TB/s", "PCIe GB/s", "NVLink GB/s", "step costs"
        ));
    }
    for name in catalog::gpu_names() {
        let g = catalog::gpu(name).expect("invariant: listed names resolve");
        let source = ldqa_sim::scenario::efficiencies_for(&g)
            .map(|(_, source)| source)
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        let nvlink = g.nvlink_bytes_per_s.map(|b| b as f64 / 1e9);
        if as_json {
            let v = json!({"gpu": name, "description": g.description, "memory_bytes": g.memory_bytes,
                "bf16_flops": g.bf16_flops, "hbm_bytes_per_s": g.hbm_bytes_per_s,
                "host_link_bytes_per_s": g.host_link_bytes_per_s, "nvlink_bytes_per_s": g.nvlink_bytes_per_s,
                "efficiencies_calibrated": source.calibrated(), "step_costs": source.describe()});
            out.push_str(&format!("{v}\n"));
            continue;
        }
        out.push_str(&format!(
            "{:<12} {:>9.2} {:>12.0} {:>9.2} {:>10.0} {:>11}  {}\n",
            name,
            g.memory_bytes as f64 / GIB_BYTES as f64,
            g.bf16_flops as f64 / 1e12,
            g.hbm_bytes_per_s as f64 / 1e12,
            g.host_link_bytes_per_s as f64 / 1e9,
            nvlink.map_or("-".to_string(), |n| format!("{n:.0}")),
            source.short()
        ));
    }
    Ok(out)
}

fn models(as_json: bool) -> String {
    let mut out = String::new();
    if !as_json {
        out.push_str(&format!(
            "{:<44} {:>8} {:>11} {:>13} {:>9}\n",
            "model", "params B", "weights GiB", "KV KiB/token", "context"
        ));
    }
    for name in catalog::model_names() {
        let m = catalog::model(name).expect("invariant: listed names resolve");
        let kv = m.kv_bytes_per_token(1, KvDtype::Auto);
        if as_json {
            let v = json!({"model": name, "total_params": m.total_params, "weight_bytes": m.weight_bytes,
                "kv_bytes_per_token": kv, "max_position_embeddings": m.max_position_embeddings});
            out.push_str(&format!("{v}\n"));
            continue;
        }
        out.push_str(&format!(
            "{:<44} {:>8.2} {:>11.2} {:>13.1} {:>9}\n",
            name,
            m.total_params as f64 / 1e9,
            m.weight_bytes as f64 / GIB_BYTES as f64,
            kv as f64 / 1024.0,
            m.max_position_embeddings
        ));
    }
    out
}
