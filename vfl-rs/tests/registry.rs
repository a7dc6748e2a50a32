//! Every registered component reaches its kernel: the registry entry, the kernel's `from_config`
//! arm and its tests are all a new component needs (see the comment on top of registry.rs).

use serde_json::{json, Map};
use vfl::attacks::UpdateAttack;
use vfl::mixing::Mixer;
use vfl::params::{Bound, Default, ParamType};
use vfl::preagg::PreAggregator;
use vfl::registry::{lookup, Kind, REGISTRY};
use vfl::rules::Rule;
use vfl::server_opt::ServerOptimizer;
use vfl::spec::parse_component_of;

/// A value for every required parameter (Clipping's c): 1, or just above its lower bound.
fn required_params(c: &vfl::registry::ComponentSpec) -> Map<String, serde_json::Value> {
    let mut m = Map::new();
    for p in c.params.iter().filter(|p| matches!(p.default, Default::Required)) {
        let value = match (p.ty, p.min) {
            (ParamType::Bool, _) => json!(true),
            (ParamType::Int, Bound::Inclusive(v) | Bound::Exclusive(v)) => json!((v as i64).max(0) + 1),
            (ParamType::Float, Bound::Inclusive(v) | Bound::Exclusive(v)) => json!(v + 1.0),
            (ParamType::Int, Bound::Unbounded) => json!(1),
            (ParamType::Float, Bound::Unbounded) => json!(1.0),
            (ParamType::Choice, _) => json!(p.choices[0]),
        };
        m.insert(p.name.into(), value);
    }
    m
}

#[test]
fn every_entry_builds_through_its_kernel() {
    for c in REGISTRY {
        let mut table = required_params(c);
        table.insert("name".into(), json!(c.name));
        let cfg = parse_component_of(&serde_json::Value::Object(table), c.kind).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        match c.kind {
            Kind::Rule => drop(Rule::from_config(&cfg).unwrap_or_else(|e| panic!("{}: {e}", c.name))),
            Kind::PreAggregator => drop(PreAggregator::from_config(&cfg).unwrap_or_else(|e| panic!("{}: {e}", c.name))),
            Kind::ServerOptimizer => drop(ServerOptimizer::from_config(Some(&cfg)).unwrap_or_else(|e| panic!("{}: {e}", c.name))),
            Kind::UpdateAttack => {
                assert!(UpdateAttack::from_config(&cfg).unwrap_or_else(|e| panic!("{}: {e}", c.name)).is_some(), "{}", c.name)
            }
            Kind::DataAttack => assert!(UpdateAttack::from_config(&cfg).unwrap().is_none(), "{} runs in the trainer", c.name),
            Kind::Mixer => drop(Mixer::from_config(&cfg).unwrap_or_else(|e| panic!("{}: {e}", c.name))),
        }
    }
}

#[test]
fn every_choice_of_a_choice_parameter_builds_and_a_wrong_word_is_named() {
    for c in REGISTRY {
        for p in c.params.iter().filter(|p| p.ty == ParamType::Choice) {
            assert!(!p.choices.is_empty(), "{}.{}", c.name, p.name);
            for word in p.choices.iter().map(|w| w.to_string()).chain(p.choices.iter().map(|w| w.to_uppercase())) {
                let cfg = parse_component_of(&json!({"name": c.name, p.name: word}), c.kind).unwrap_or_else(|e| panic!("{}: {e}", c.name));
                assert!(UpdateAttack::from_config(&cfg).is_ok(), "{}({}={word})", c.name, p.name);
            }
            let err = parse_component_of(&json!({"name": c.name, p.name: "nope"}), c.kind).unwrap_err().to_string();
            assert_eq!(err, format!("Expected one of {} for {}.{}, got \"nope\"", p.choices.join(", "), c.name, p.name));
        }
    }
}

#[test]
fn every_alias_finds_its_component() {
    for c in REGISTRY {
        for alias in c.aliases {
            assert_eq!(lookup(alias, "component", |k| k == c.kind).unwrap().name, c.name, "{alias}");
            assert_eq!(lookup(&alias.to_uppercase(), "component", |k| k == c.kind).unwrap().name, c.name, "{alias}");
        }
    }
}

#[test]
fn mixers_keep_what_their_papers_say() {
    let nna = Mixer::from_config(&parse_component_of(&json!("MoNNA"), Kind::Mixer).unwrap()).unwrap();
    let gossip = Mixer::from_config(&parse_component_of(&json!("gossip"), Kind::Mixer).unwrap()).unwrap();
    assert_eq!((nna.keep(16, 5).unwrap(), gossip.keep(16, 5).unwrap()), (6, 11));
    let err = nna.keep(10, 5).unwrap_err().to_string();
    assert_eq!(err, "Expected n − f > f (an honest majority) for a decentralised run, got n = 10, f = 5");
}
