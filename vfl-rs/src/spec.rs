//! Parsing and validating strategy and attack specifications.
//!
//! Text form: components joined by `+`, each `Name` or `Name(key=value, ...)` with keyword-only
//! parameters, e.g. `"NNM(f=2) + Krum(f=2)"` or `"TrimmedMean(beta=0.1) + FedAdam(eta=0.01)"`.
//! JSON form: `{"name": "Krum", "f": 2}` (or `"type"` instead of `"name"`, or the parameters under
//! `"params"`), a list of such components, or `{"pre": [...], "rule": ..., "server": ...}`.
//! Both forms end in the same validated structures.

use std::fmt;

use serde_json::{Map, Value as Json};

use crate::error::{Result, VflError};
use crate::params::Params;
use crate::registry::{lookup, ComponentSpec, Kind};

/// One validated component: a registry entry with its parameter values.
#[derive(Clone, Debug)]
pub struct ComponentConfig {
    pub spec: &'static ComponentSpec,
    pub params: Params,
}

impl PartialEq for ComponentConfig {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.spec, other.spec) && self.params == other.params
    }
}

impl ComponentConfig {
    pub fn name(&self) -> &'static str {
        self.spec.name
    }

    pub fn kind(&self) -> Kind {
        self.spec.kind
    }

    fn build(spec: &'static ComponentSpec, given: &Map<String, Json>) -> Result<Self> {
        Ok(ComponentConfig { spec, params: Params::validate(spec.name, spec.params, given)? })
    }

    pub fn to_json(&self) -> Json {
        serde_json::json!({"name": self.spec.name, "kind": self.spec.kind, "params": self.params.to_json()})
    }
}

impl fmt::Display for ComponentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let given: Vec<String> = self.params.given().map(|(k, v)| format!("{k}={v}")).collect();
        if given.is_empty() {
            write!(f, "{}", self.spec.name)
        } else {
            write!(f, "{}({})", self.spec.name, given.join(", "))
        }
    }
}

/// A strategy: pre-aggregators, then one rule, then optionally a server optimiser.
#[derive(Clone, Debug, PartialEq)]
pub struct StrategySpec {
    pub pre: Vec<ComponentConfig>,
    pub rule: ComponentConfig,
    pub server: Option<ComponentConfig>,
}

impl fmt::Display for StrategySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self.pre.iter().map(ToString::to_string).collect();
        // `FedAdam` alone means FedAvg + FedAdam; print it the way a user would write it.
        let implicit_rule = self.server.is_some() && self.rule.spec.name == "FedAvg";
        if !implicit_rule {
            parts.push(self.rule.to_string());
        }
        if let Some(s) = &self.server {
            parts.push(s.to_string());
        }
        write!(f, "{}", parts.join(" + "))
    }
}

impl StrategySpec {
    pub fn parse(text: &str) -> Result<Self> {
        let parts = split_top_level(text, '+')?;
        let comps = parts.iter().map(|p| parse_component(p, "strategy component", Kind::is_strategy_part)).collect::<Result<Vec<_>>>()?;
        Self::assemble(comps, text)
    }

    pub fn from_json(value: &Json) -> Result<Self> {
        match value {
            Json::String(s) => Self::parse(s),
            Json::Array(items) => {
                let comps = items
                    .iter()
                    .map(|v| component_from_json(v, "strategy component", Kind::is_strategy_part))
                    .collect::<Result<Vec<_>>>()?;
                Self::assemble(comps, &value.to_string())
            }
            Json::Object(m) if m.contains_key("rule") || m.contains_key("pre") || m.contains_key("server") => {
                for key in m.keys() {
                    if !matches!(key.as_str(), "pre" | "rule" | "server" | "text") {
                        return Err(VflError::value(format!("Unknown key '{key}' in a strategy table: expected pre, rule, server")));
                    }
                }
                let mut comps = Vec::new();
                match m.get("pre") {
                    None | Some(Json::Null) => {}
                    Some(Json::Array(items)) => {
                        for v in items {
                            comps.push(component_from_json(v, "pre-aggregator", |k| k == Kind::PreAggregator)?);
                        }
                    }
                    Some(other) => return Err(VflError::type_error(format!("Expected a list for the strategy's 'pre', got {other}"))),
                }
                if let Some(rule) = m.get("rule").filter(|v| !v.is_null()) {
                    comps.push(component_from_json(rule, "aggregation rule", |k| k == Kind::Rule)?);
                }
                if let Some(server) = m.get("server").filter(|v| !v.is_null()) {
                    comps.push(component_from_json(server, "server optimiser", |k| k == Kind::ServerOptimizer)?);
                }
                Self::assemble(comps, &value.to_string())
            }
            Json::Object(_) => {
                Self::assemble(vec![component_from_json(value, "strategy component", Kind::is_strategy_part)?], &value.to_string())
            }
            other => Err(VflError::type_error(format!(
                "Expected a strategy as text like \"Krum(f=2)\", a table or a list of tables, got {other}"
            ))),
        }
    }

    /// Order and count check: pre-aggregators first, at most one rule, at most one server optimiser last.
    fn assemble(comps: Vec<ComponentConfig>, source: &str) -> Result<Self> {
        let mut pre = Vec::new();
        let mut rule: Option<ComponentConfig> = None;
        let mut server: Option<ComponentConfig> = None;
        for c in comps {
            match c.kind() {
                Kind::PreAggregator if rule.is_none() && server.is_none() => pre.push(c),
                Kind::PreAggregator => {
                    return Err(VflError::value(format!(
                        "In strategy '{source}': pre-aggregator {} must come before the aggregation rule",
                        c.name()
                    )))
                }
                Kind::Rule if rule.is_none() && server.is_none() => rule = Some(c),
                Kind::Rule => {
                    return Err(VflError::value(format!(
                        "In strategy '{source}': expected one aggregation rule before any server optimiser, got another: {}",
                        c.name()
                    )))
                }
                Kind::ServerOptimizer if server.is_none() => server = Some(c),
                _ => {
                    return Err(VflError::value(format!(
                        "In strategy '{source}': expected at most one server optimiser, got another: {}",
                        c.name()
                    )))
                }
            }
        }
        let rule = match (rule, &server) {
            (Some(r), _) => r,
            // A server optimiser alone (e.g. "FedAdam") runs on the plain weighted mean.
            (None, Some(_)) => ComponentConfig::build(lookup("FedAvg", "rule", |k| k == Kind::Rule)?, &Map::new())?,
            (None, None) => {
                return Err(VflError::value(format!(
                    "In strategy '{source}': expected an aggregation rule (e.g. FedAvg, Krum(f=2)), got only pre-aggregators"
                )))
            }
        };
        Ok(StrategySpec { pre, rule, server })
    }

    pub fn to_json(&self) -> Json {
        serde_json::json!({
            "text": self.to_string(),
            "pre": self.pre.iter().map(ComponentConfig::to_json).collect::<Vec<_>>(),
            "rule": self.rule.to_json(),
            "server": self.server.as_ref().map(ComponentConfig::to_json),
        })
    }
}

/// Parse one attack: `"alie(z=1.5)"`, or a table `{"type": "alie", "z": 1.5}`.
pub fn parse_attack(value: &Json) -> Result<ComponentConfig> {
    component_from_json(value, "attack", Kind::is_attack)
}

/// Parse one component of the given kind (text or a table), e.g. a pre-aggregator on its own.
pub fn parse_component_of(value: &Json, kind: Kind) -> Result<ComponentConfig> {
    let what = kind.role();
    match kind {
        // the two attack kinds share one name space: "an attack" is what users write
        Kind::UpdateAttack | Kind::DataAttack => parse_attack(value),
        _ => match value {
            Json::String(s) => parse_component(s, what, move |k| k == kind),
            _ => component_from_json(value, what, move |k| k == kind),
        },
    }
}

fn component_from_json(value: &Json, what: &str, want: impl Fn(Kind) -> bool + Copy) -> Result<ComponentConfig> {
    match value {
        Json::String(s) => parse_component(s, what, want),
        Json::Object(m) => {
            let name = match (m.get("name"), m.get("type")) {
                (Some(Json::String(n)), None) | (None, Some(Json::String(n))) => n.clone(),
                (Some(_), Some(_)) => return Err(VflError::value(format!("Expected 'name' or 'type' for a {what}, got both"))),
                _ => return Err(VflError::value(format!("Expected a 'name' (text) for a {what}, got {value}"))),
            };
            let spec = lookup(&name, what, want)?;
            let mut given = Map::new();
            for (k, v) in m {
                match k.as_str() {
                    "name" | "type" | "kind" => {}
                    "params" => match v {
                        Json::Object(pm) => given.extend(pm.clone()),
                        Json::Null => {}
                        other => return Err(VflError::type_error(format!("Expected a table for {}.params, got {other}", spec.name))),
                    },
                    _ => {
                        given.insert(k.clone(), v.clone());
                    }
                }
            }
            ComponentConfig::build(spec, &given)
        }
        other => Err(VflError::type_error(format!("Expected a {what} as text or a table, got {other}"))),
    }
}

/// `Name` or `Name(k=v, ...)`.
fn parse_component(text: &str, what: &str, want: impl Fn(Kind) -> bool + Copy) -> Result<ComponentConfig> {
    let t = text.trim();
    let (name, args) = match t.find('(') {
        None => (t, ""),
        Some(open) => {
            if !t.ends_with(')') {
                return Err(VflError::value(format!("Expected ')' at the end of '{t}'")));
            }
            (t[..open].trim(), &t[open + 1..t.len() - 1])
        }
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-')) {
        return Err(VflError::value(format!("Expected a {what} name like Krum or sign_flip, got '{t}'")));
    }
    let spec = lookup(name, what, want)?;
    let mut given = Map::new();
    for arg in split_top_level(args, ',')?.into_iter().filter(|a| !a.trim().is_empty()) {
        let Some((k, v)) = arg.split_once('=') else {
            return Err(VflError::value(format!("Expected keyword arguments like {}(f=2), got '{}' in '{t}'", spec.name, arg.trim())));
        };
        let key = k.trim().to_string();
        if given.contains_key(&key) {
            return Err(VflError::value(format!("Parameter '{key}' given twice in '{t}'")));
        }
        given.insert(key, literal(v.trim())?);
    }
    ComponentConfig::build(spec, &given)
}

fn literal(v: &str) -> Result<Json> {
    let lower = v.to_ascii_lowercase();
    Ok(match lower.as_str() {
        "true" => Json::Bool(true),
        "false" => Json::Bool(false),
        "none" | "null" => Json::Null,
        "inf" | "+inf" | "infinity" | "-inf" | "-infinity" => Json::String(lower),
        _ => {
            if let Ok(i) = v.parse::<i64>() {
                Json::from(i)
            } else if let Ok(x) = v.parse::<f64>() {
                if x.is_nan() {
                    // JSON has no NaN: it would turn into null, i.e. "use the default".
                    return Err(VflError::value(format!("Expected a number, got {v}")));
                }
                Json::from(x)
            } else {
                let unquoted = v.trim_matches(|c| c == '"' || c == '\'');
                Json::String(unquoted.to_string())
            }
        }
    })
}

/// Split on `sep` outside parentheses; unbalanced parentheses are an error.
fn split_top_level(text: &str, sep: char) -> Result<Vec<String>> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return Err(VflError::value(format!("Unbalanced ')' in '{text}'")));
        }
        if c == sep && depth == 0 {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    if depth != 0 {
        return Err(VflError::value(format!("Unbalanced '(' in '{text}'")));
    }
    parts.push(cur);
    if sep == '+' && parts.iter().any(|p| p.trim().is_empty()) {
        return Err(VflError::value(format!("Expected a strategy like \"NNM(f=2) + Krum(f=2)\", got '{text}'")));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips() {
        for text in ["Krum(f=2)", "NNM(f=1) + Krum(f=1)", "FedAdam(eta=0.01)", "TrimmedMean(beta=0.1) + FedYogi", "FedAvg"] {
            let s = StrategySpec::parse(text).unwrap();
            assert_eq!(s.to_string(), text);
            assert_eq!(StrategySpec::parse(&s.to_string()).unwrap(), s);
            assert_eq!(StrategySpec::from_json(&s.to_json()).unwrap().to_string(), text);
        }
        let s = StrategySpec::parse("FedAdam").unwrap();
        assert_eq!(s.rule.name(), "FedAvg");
    }

    #[test]
    fn tables_and_lists() {
        let s = StrategySpec::from_json(&serde_json::json!({"name": "Krum", "f": 2})).unwrap();
        assert_eq!(s.to_string(), "Krum(f=2)");
        let s = StrategySpec::from_json(&serde_json::json!([{"type": "NNM", "params": {"f": 1}}, "MultiKrum(f=1, m=3)"])).unwrap();
        assert_eq!(s.to_string(), "NNM(f=1) + MultiKrum(f=1, m=3)");
        let a = parse_attack(&serde_json::json!({"type": "model_poisoning", "intensity": 0.5})).unwrap();
        assert_eq!(a.to_string(), "model_poisoning(intensity=0.5)");
    }

    #[test]
    fn clear_errors() {
        let e = |t: &str| StrategySpec::parse(t).unwrap_err().to_string();
        assert!(e("Krum(f=-1)").contains("Expected a value >= 0 for Krum.f, got -1"), "{}", e("Krum(f=-1)"));
        assert!(e("Krum(g=1)").contains("Unknown parameter 'g' for Krum"));
        assert!(e("Krum(f=1.5)").contains("Expected an integer for Krum.f"));
        assert!(e("Krum(2)").contains("keyword arguments"));
        assert!(e("Krum + FedMedian").contains("another: FedMedian"));
        assert!(e("NNM(f=1)").contains("only pre-aggregators"));
        assert!(e("Krum(f=1").contains("Unbalanced '('"));
        assert!(e("Krum(f=1)x").contains("Expected ')'"));
        assert!(StrategySpec::parse("Clipping + FedAvg").is_ok(), "Clipping's radius defaults to the round's median norm");
        assert!(e("sign_flip").contains("not a valid strategy component"));
        assert!(e("Krum + NNM(f=1)").contains("must come before"));
    }
}
