//! The values of a swept axis, as a user writes them: `8,16,32` (a list), `10:50:10`
//! (start:stop:step, stop included when the steps land on it) or `10..200x8` (eight values
//! from 10 to 200, evenly spaced, rounded).

/// The values of a swept axis, ascending and distinct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range(pub Vec<usize>);

/// Parses a range of whole numbers; errors say which form was expected.
pub fn parse_range(text: &str) -> Result<Range, String> {
    values(text).map(Range)
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
