//! Typed, validated parameters for every registered component.

use std::fmt;

use serde::Serialize;
use serde_json::Value as Json;

use crate::error::{Result, VflError};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    Int,
    Float,
    Bool,
    /// One of a fixed list of words (`ParamSpec::choices`).
    Choice,
}

/// A concrete parameter value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParamValue {
    Int(i64),
    Float(f64),
    Bool(bool),
    Choice(&'static str),
}

impl ParamValue {
    /// The value as a number (a choice has none: NaN).
    pub fn as_f64(self) -> f64 {
        match self {
            ParamValue::Int(v) => v as f64,
            ParamValue::Float(v) => v,
            ParamValue::Bool(b) => b as i64 as f64,
            ParamValue::Choice(_) => f64::NAN,
        }
    }

    /// Whether two values are the same setting (an integer and a float of equal value are).
    fn same(self, other: ParamValue) -> bool {
        match (self, other) {
            (ParamValue::Choice(a), ParamValue::Choice(b)) => a == b,
            (a, b) => a.as_f64() == b.as_f64(),
        }
    }

    pub fn to_json(self) -> Json {
        match self {
            ParamValue::Int(v) => Json::from(v),
            // JSON has no infinity; spell it the way the string syntax does.
            ParamValue::Float(v) if v.is_infinite() => Json::from(if v > 0.0 { "inf" } else { "-inf" }),
            ParamValue::Float(v) => Json::from(v),
            ParamValue::Bool(b) => Json::from(b),
            ParamValue::Choice(c) => Json::from(c),
        }
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Int(v) => write!(f, "{v}"),
            ParamValue::Float(v) if v.is_infinite() => write!(f, "{}", if *v > 0.0 { "inf" } else { "-inf" }),
            // `{:?}` keeps a trailing `.0`, so the text round-trips as a float.
            ParamValue::Float(v) => write!(f, "{v:?}"),
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Choice(c) => write!(f, "{c}"),
        }
    }
}

/// What happens when a parameter is not given.
#[derive(Clone, Copy, Debug)]
pub enum Default {
    Value(ParamValue),
    /// Left unset; the component derives it (e.g. `f` from the number of malicious clients).
    Derived,
    /// Must be given.
    Required,
}

#[derive(Clone, Copy, Debug)]
pub enum Bound {
    Unbounded,
    Inclusive(f64),
    Exclusive(f64),
}

/// The declaration of one parameter: type, default, bounds and a one-line description.
#[derive(Clone, Copy, Debug)]
pub struct ParamSpec {
    pub name: &'static str,
    pub ty: ParamType,
    pub default: Default,
    pub min: Bound,
    pub max: Bound,
    /// The words a `Choice` parameter takes (empty for the other types).
    pub choices: &'static [&'static str],
    pub description: &'static str,
}

impl ParamSpec {
    fn range_text(&self) -> String {
        // 3.4028234663852886e38, not its 39 digits
        let num = |v: f64| if v.abs() >= 1e16 { format!("{v:e}") } else { format!("{v}") };
        let lo = match self.min {
            Bound::Unbounded => None,
            Bound::Inclusive(v) => Some(format!(">= {}", num(v))),
            Bound::Exclusive(v) => Some(format!("> {}", num(v))),
        };
        let hi = match self.max {
            Bound::Unbounded => None,
            Bound::Inclusive(v) => Some(format!("<= {}", num(v))),
            Bound::Exclusive(v) => Some(format!("< {}", num(v))),
        };
        match (lo, hi) {
            (Some(a), Some(b)) => format!("{a} and {b}"),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => "any value".into(),
        }
    }

    /// Check one given value against this declaration. `owner` names the component in errors.
    pub fn check(&self, owner: &str, raw: &Json) -> Result<ParamValue> {
        let what = format!("{owner}.{}", self.name);
        if self.ty == ParamType::Choice {
            let word = raw.as_str().map(|s| s.trim().to_ascii_lowercase());
            return match self.choices.iter().find(|c| Some(c.to_ascii_lowercase()) == word) {
                Some(c) => Ok(ParamValue::Choice(c)),
                None => Err(VflError::expected(&what, format!("one of {}", self.choices.join(", ")), raw)),
            };
        }
        let value = match (self.ty, raw) {
            (ParamType::Bool, Json::Bool(b)) => ParamValue::Bool(*b),
            (ParamType::Int, Json::Number(n)) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => ParamValue::Int(i),
                (None, Some(x)) if x.fract() == 0.0 && x.abs() < 9.0e15 => ParamValue::Int(x as i64),
                _ => return Err(VflError::type_error(format!("Expected an integer for {what}, got {n}"))),
            },
            (ParamType::Float, Json::Number(n)) => ParamValue::Float(n.as_f64().unwrap_or(f64::NAN)),
            (ParamType::Float, Json::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "inf" | "+inf" | "infinity" => ParamValue::Float(f64::INFINITY),
                "-inf" | "-infinity" => ParamValue::Float(f64::NEG_INFINITY),
                _ => return Err(VflError::type_error(format!("Expected a number for {what}, got {raw}"))),
            },
            (ty, other) => {
                let tname = match ty {
                    ParamType::Int => "an integer",
                    ParamType::Float => "a number",
                    ParamType::Bool => "true or false",
                    ParamType::Choice => "a word", // (checked above)
                };
                return Err(VflError::type_error(format!("Expected {tname} for {what}, got {other}")));
            }
        };
        let x = value.as_f64();
        let ok_lo = match self.min {
            Bound::Unbounded => true,
            Bound::Inclusive(v) => x >= v,
            Bound::Exclusive(v) => x > v,
        };
        let ok_hi = match self.max {
            Bound::Unbounded => true,
            Bound::Inclusive(v) => x <= v,
            Bound::Exclusive(v) => x < v,
        };
        if x.is_nan() || !ok_lo || !ok_hi {
            return Err(VflError::expected(&what, format!("a value {}", self.range_text()), value));
        }
        Ok(value)
    }

    pub fn to_json(&self) -> Json {
        let mut m = serde_json::Map::new();
        m.insert("name".into(), Json::from(self.name));
        m.insert("type".into(), serde_json::to_value(self.ty).unwrap_or(Json::Null));
        let (default, required, derived) = match self.default {
            Default::Value(v) => (v.to_json(), false, false),
            Default::Derived => (Json::Null, false, true),
            Default::Required => (Json::Null, true, false),
        };
        m.insert("default".into(), default);
        m.insert("required".into(), Json::from(required));
        m.insert("derived".into(), Json::from(derived));
        let bound = |b: Bound| match b {
            Bound::Unbounded => (Json::Null, Json::Null),
            Bound::Inclusive(v) => (Json::from(v), Json::Null),
            Bound::Exclusive(v) => (Json::Null, Json::from(v)),
        };
        let (min, xmin) = bound(self.min);
        let (max, xmax) = bound(self.max);
        m.insert("minimum".into(), min);
        m.insert("exclusive_minimum".into(), xmin);
        m.insert("maximum".into(), max);
        m.insert("exclusive_maximum".into(), xmax);
        m.insert("choices".into(), Json::from(self.choices.to_vec()));
        m.insert("description".into(), Json::from(self.description));
        Json::Object(m)
    }
}

/// Validated values for one component, in declaration order. `None` means "derived".
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    owner: &'static str,
    pub(crate) values: Vec<(&'static str, Option<ParamValue>, bool)>,
}

impl Params {
    /// Validate `given` (a JSON object of name → value) against `specs`.
    pub fn validate(owner: &'static str, specs: &'static [ParamSpec], given: &serde_json::Map<String, Json>) -> Result<Self> {
        for key in given.keys() {
            if !specs.iter().any(|s| s.name == key) {
                let known: Vec<&str> = specs.iter().map(|s| s.name).collect();
                let expected = if known.is_empty() { "no parameters".to_string() } else { format!("one of: {}", known.join(", ")) };
                return Err(VflError::value(format!("Unknown parameter '{key}' for {owner}: expected {expected}")));
            }
        }
        let mut values = Vec::with_capacity(specs.len());
        for spec in specs {
            match given.get(spec.name) {
                Some(Json::Null) | None => match spec.default {
                    Default::Value(v) => values.push((spec.name, Some(v), false)),
                    Default::Derived => values.push((spec.name, None, false)),
                    Default::Required => {
                        return Err(VflError::value(format!("{owner} requires the parameter '{}' ({})", spec.name, spec.description)))
                    }
                },
                Some(raw) => {
                    let v = spec.check(owner, raw)?;
                    // A value equal to the default is not shown in the canonical text, so
                    // "FedAdam(eta=0.1)" and "FedAdam" name the same strategy.
                    let shown = !matches!(spec.default, Default::Value(d) if d.same(v));
                    values.push((spec.name, Some(v), shown))
                }
            }
        }
        Ok(Params { owner, values })
    }

    /// The value of a declared parameter (`None`: derived and not given). Reading a name the
    /// component never declared is a defect in the reader: an error naming it, never NaN or 0.
    fn get(&self, name: &str) -> Result<Option<ParamValue>> {
        match self.values.iter().find(|(n, _, _)| *n == name) {
            Some((_, v, _)) => Ok(*v),
            None => {
                let declared: Vec<&str> = self.values.iter().map(|(n, _, _)| *n).collect();
                Err(VflError::value(format!(
                    "{} has no parameter '{name}' (declared: {}): the registry and its kernel disagree",
                    self.owner,
                    if declared.is_empty() { "none".to_string() } else { declared.join(", ") }
                )))
            }
        }
    }

    fn required(&self, name: &str) -> Result<ParamValue> {
        self.get(name)?.ok_or_else(|| VflError::value(format!("{}.{name} has no value: it is derived and was not given", self.owner)))
    }

    /// A parameter with a value (given or defaulted).
    pub fn f64(&self, name: &str) -> Result<f64> {
        Ok(self.required(name)?.as_f64())
    }

    /// A parameter that may be derived (`None` when not given).
    pub fn opt_f64(&self, name: &str) -> Result<Option<f64>> {
        Ok(self.get(name)?.map(ParamValue::as_f64))
    }

    /// A choice parameter's word (given or defaulted), as the registry spells it.
    pub fn choice(&self, name: &str) -> Result<&'static str> {
        match self.required(name)? {
            ParamValue::Choice(c) => Ok(c),
            other => Err(VflError::value(format!("{}.{name} is {other}, not a choice: the registry and its kernel disagree", self.owner))),
        }
    }

    /// A count with a value (given or defaulted); the registry's bounds keep it >= 0.
    pub fn usize(&self, name: &str) -> Result<usize> {
        Ok(self.required(name)?.as_f64().max(0.0) as usize)
    }

    /// A count that may be derived (`None` when not given).
    pub fn opt_usize(&self, name: &str) -> Result<Option<usize>> {
        Ok(self.get(name)?.map(|v| v.as_f64().max(0.0) as usize))
    }

    /// Values the user gave explicitly, for the canonical text form.
    pub fn given(&self) -> impl Iterator<Item = (&'static str, ParamValue)> + '_ {
        self.values.iter().filter(|(_, _, g)| *g).filter_map(|(n, v, _)| v.map(|v| (*n, v)))
    }

    pub fn to_json(&self) -> Json {
        let mut m = serde_json::Map::new();
        for (n, v, _) in &self.values {
            m.insert((*n).into(), v.map_or(Json::Null, ParamValue::to_json));
        }
        Json::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::REGISTRY;

    fn params_of(name: &str) -> Params {
        let spec = REGISTRY.iter().find(|c| c.name == name).unwrap();
        Params::validate(spec.name, spec.params, &serde_json::Map::new()).unwrap()
    }

    #[test]
    fn reading_an_undeclared_name_fails_loudly() {
        // A misspelt name in a kernel's from_config used to read as NaN (f64) or 0 (usize).
        let p = params_of("CenteredClipping");
        assert_eq!(p.usize("iters").unwrap(), 1);
        assert_eq!(p.opt_f64("tau").unwrap(), None); // derived each round from the updates
        let err = p.f64("taus").unwrap_err().to_string();
        assert!(err.contains("CenteredClipping has no parameter 'taus' (declared: tau, iters)"), "{err}");
        assert!(p.usize("iter").is_err() && p.opt_f64("radius").is_err() && p.opt_usize("f").is_err());
    }

    #[test]
    fn a_derived_parameter_reads_as_none_or_fails_where_a_value_is_needed() {
        let p = params_of("Krum");
        assert_eq!(p.opt_usize("f").unwrap(), None);
        let err = p.usize("f").unwrap_err().to_string();
        assert!(err.contains("Krum.f has no value: it is derived"), "{err}");
    }
}
