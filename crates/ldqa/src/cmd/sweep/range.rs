//! The values of a swept axis, as a user writes them: `8,16,32` (a list), `10:50:10`
//! (start:stop:step, stop included when the steps land on it) or `10..200x8` (eight values
//! from 10 to 200, evenly spaced, rounded). Sizes, names and hit:miss ratios are lists.

use ldqa_workload::HitMissRatio;

/// The values of a swept axis, ascending and distinct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range(pub Vec<usize>);

/// The values of a listed axis (sizes, names, ratios), in the order given, each once.
#[derive(Debug, Clone, PartialEq)]
pub struct List<T>(pub Vec<T>);

/// Parses a range of whole numbers; errors say which form was expected.
pub fn parse_range(text: &str) -> Result<Range, String> {
    values(text).map(Range)
}

/// A comma-separated list of GiB, each positive.
pub fn parse_gibs(text: &str) -> Result<List<f64>, String> {
    let gibs = text
        .split(',')
        .map(|s| {
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|g| g.is_finite() && *g > 0.0)
                .ok_or_else(|| format!("{s:?} is not a positive number of GiB"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(List(distinct(gibs)))
}

/// A comma-separated list of names (GPUs, models), each given once.
pub fn parse_names(text: &str) -> Result<List<String>, String> {
    let names: Vec<String> = text.split(',').map(|s| s.trim().to_string()).collect();
    if let Some(empty) = names.iter().position(String::is_empty) {
        return Err(format!("{text:?}: name {} is empty", empty + 1));
    }
    Ok(List(distinct(names)))
}

/// A comma-separated list of hit:miss ratios (`1:1,2:1`).
pub fn parse_ratios(text: &str) -> Result<List<HitMissRatio>, String> {
    let ratios = text
        .split(',')
        .map(|s| super::super::run_args::parse_hit_miss(s.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(List(distinct(ratios)))
}

/// `values` in the order given, each once.
fn distinct<T: PartialEq>(values: Vec<T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(values.len());
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

fn values(text: &str) -> Result<Vec<usize>, String> {
    let text = text.trim();
    let values = if let Some((span, count)) = text.split_once('x') {
        let (start, stop) = span
            .split_once("..")
            .ok_or_else(|| format!("{text:?}: expected START..STOPxN, e.g. 10..200x8"))?;
        spaced(number(start)?, number(stop)?, number(count)?)?
    } else if text.contains(':') {
        let parts: Vec<&str> = text.split(':').collect();
        let [start, stop, step] = parts.as_slice() else {
            return Err(format!("{text:?}: expected START:STOP:STEP, e.g. 10:50:10"));
        };
        stepped(number(start)?, number(stop)?, number(step)?)?
    } else {
        text.split(',').map(number).collect::<Result<Vec<_>, _>>()?
    };
    let mut values = values;
    values.sort_unstable();
    values.dedup();
    if values.contains(&0) {
        return Err(format!("{text:?}: every value must be at least 1"));
    }
    if values.is_empty() {
        return Err(format!("{text:?}: no values"));
    }
    Ok(values)
}

fn number(s: &str) -> Result<usize, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number"))
}

fn stepped(start: usize, stop: usize, step: usize) -> Result<Vec<usize>, String> {
    if step == 0 || start > stop {
        return Err(format!(
            "{start}:{stop}:{step}: START must not exceed STOP and STEP must be at least 1"
        ));
    }
    Ok((start..=stop).step_by(step).collect())
}

fn spaced(start: usize, stop: usize, count: usize) -> Result<Vec<usize>, String> {
    if count < 2 || start >= stop {
        return Err(format!(
            "{start}..{stop}x{count}: START must be below STOP and N at least 2"
        ));
    }
    let span = (stop - start) as f64;
    Ok((0..count)
        .map(|i| start + (span * i as f64 / (count - 1) as f64).round() as usize)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_forms() {
        assert_eq!(values("32,8,16,8").unwrap(), vec![8, 16, 32]);
        assert_eq!(values("10:50:10").unwrap(), vec![10, 20, 30, 40, 50]);
        assert_eq!(values("10:45:10").unwrap(), vec![10, 20, 30, 40]);
        assert_eq!(values("10..20x3").unwrap(), vec![10, 15, 20]);
        assert_eq!(parse_range(" 7 ").unwrap(), Range(vec![7]));
    }

    #[test]
    fn lists_of_sizes_names_and_ratios() {
        assert_eq!(parse_gibs("20, 50,20").unwrap().0, vec![20.0, 50.0]);
        assert!(parse_gibs("20,-1").unwrap_err().contains("positive"));
        assert_eq!(parse_names("h200,l40s").unwrap().0, vec!["h200", "l40s"]);
        assert!(parse_names("h200,").unwrap_err().contains("empty"));
        assert_eq!(parse_ratios("1:1,2:1").unwrap().0.len(), 2);
        assert!(parse_ratios("1:1,x").is_err());
    }

    #[test]
    fn mistakes_say_which_form_was_expected() {
        for (bad, says) in [
            ("", "not a whole number"),
            ("0,4", "at least 1"),
            ("a,b", "not a whole number"),
            ("10:5:1", "START must not exceed STOP"),
            ("1:2", "START:STOP:STEP"),
            ("10..20", "not a whole number"),
            ("10-20x3", "START..STOPxN"),
            ("10..20x1", "N at least 2"),
        ] {
            let e = parse_range(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
