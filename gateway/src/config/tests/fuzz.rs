//! The config parser on arbitrary TOML (proptest): no panic; every error is a TOML syntax error
//! or names the path of a value, near the value that was changed; a document the parser accepts
//! builds.

use proptest::prelude::*;
use toml::{Table, Value};

use super::FULL;
use crate::{
    Configured,
    config::{Config, ConfigError},
};

/// Parses `text`; when accepted, builds it too (an accepted file must build).
fn parse_and_build(text: &str) -> Result<(), ConfigError> {
    let config = Config::from_toml_str(text)?;
    if let Err(error) = Configured::from_config(&config) {
        panic!("accepted but does not build: {error}\n{text}");
    }
    Ok(())
}

/// A leaf of the document: its path as the errors write it, and how to reach it.
#[derive(Clone, Debug)]
struct Leaf {
    path: String,
    steps: Vec<Step>,
}

#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

fn leaves(value: &Value, path: &str, steps: &[Step], out: &mut Vec<Leaf>) {
    let mut push = |path: String, step: Step, value: &Value| {
        let mut steps = steps.to_vec();
        steps.push(step);
        leaves(value, &path, &steps, out);
    };
    match value {
        Value::Table(table) => {
            for (key, value) in table {
                let segment = super::super::error::key_segment(key);
                let path = if path.is_empty() {
                    segment
                } else {
                    format!("{path}.{segment}")
                };
                push(path, Step::Key(key.clone()), value);
            }
        }
        Value::Array(items) if items.iter().all(Value::is_table) && !items.is_empty() => {
            for (index, value) in items.iter().enumerate() {
                push(format!("{path}[{index}]"), Step::Index(index), value);
            }
        }
        _ => out.push(Leaf {
            path: path.to_owned(),
            steps: steps.to_vec(),
        }),
    }
}

/// The parent of the leaf at `steps` and the leaf's last step.
fn parent_of<'a>(root: &'a mut Value, steps: &[Step]) -> Option<&'a mut Value> {
    let mut current = root;
    for step in &steps[..steps.len() - 1] {
        current = match step {
            Step::Key(key) => current.as_table_mut()?.get_mut(key)?,
            Step::Index(index) => current.as_array_mut()?.get_mut(*index)?,
        };
    }
    Some(current)
}

/// What is done to one leaf.
#[derive(Clone, Debug)]
enum Change {
    Replace(Value),
    Remove,
    /// An unknown key next to the leaf.
    AddUnknown(String, Value),
}

fn toml_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::Integer),
        prop_oneof![Just(0i64), Just(-1), Just(1), Just(u32::MAX as i64 + 1)]
            .prop_map(Value::Integer),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::Float),
        any::<bool>().prop_map(Value::Boolean),
        prop_oneof![
            Just("".to_owned()),
            Just("0s".to_owned()),
            Just("-5s".to_owned()),
            Just("1000000000y".to_owned()),
            Just("8XB".to_owned()),
            Just("16MiB".to_owned()),
            Just("ws://".to_owned()),
            Just("wss://host/v1".to_owned()),
            Just("http://[::1".to_owned()),
            Just("x session".to_owned()),
            Just("auto".to_owned()),
            Just("websocket".to_owned()),
            "\\PC{0,12}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..3)
                .prop_map(|map| Value::Table(map.into_iter().collect())),
        ]
    })
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        4 => toml_value().prop_map(Change::Replace),
        1 => Just(Change::Remove),
        1 => ("[a-z_]{1,8}", toml_value()).prop_map(|(key, value)| Change::AddUnknown(key, value)),
    ]
}

/// The first segment of a path: `routes[0]`, `eligibility`, `listen`...
fn top(path: &str) -> &str {
    let end = path.find('.').unwrap_or(path.len());
    &path[..end]
}

fn full() -> Value {
    Value::Table(toml::from_str::<Table>(FULL).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_never_panics(text in "[a-z_\\[\\]=\"'.,{}# \\n0-9:/-]{0,120}") {
        match parse_and_build(&text) {
            Ok(()) | Err(ConfigError::Syntax { .. }) => {}
            Err(ConfigError::Invalid { message, .. }) => prop_assert!(!message.is_empty()),
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn a_changed_value_is_accepted_or_named(index in any::<prop::sample::Index>(), change in change()) {
        let mut document = full();
        let mut all = Vec::new();
        leaves(&document, "", &[], &mut all);
        let leaf = index.get(&all).clone();
        let parent = parent_of(&mut document, &leaf.steps).unwrap();
        let last = leaf.steps.last().unwrap();
        match (&change, last, parent) {
            (Change::Replace(value), Step::Key(key), Value::Table(table)) => {
                table.insert(key.clone(), value.clone());
            }
            (Change::Remove, Step::Key(key), Value::Table(table)) => {
                table.remove(key);
            }
            (Change::AddUnknown(key, value), _, Value::Table(table)) => {
                if table.contains_key(key) {
                    return Ok(());
                }
                table.insert(key.clone(), value.clone());
            }
            _ => return Ok(()),
        }
        // Where the change is: the leaf, or the unknown key next to it.
        let changed = match &change {
            Change::AddUnknown(key, _) => {
                let key = super::super::error::key_segment(key);
                match leaf.path.rfind('.') {
                    Some(dot) => format!("{}.{key}", &leaf.path[..dot]),
                    None => key,
                }
            }
            _ => leaf.path.clone(),
        };
        let text = toml::to_string(&document).unwrap();
        match parse_and_build(&text) {
            Ok(()) => {}
            Err(ConfigError::Invalid { path, message }) => {
                prop_assert!(!message.is_empty());
                prop_assert!(!path.is_empty(), "no path for {:?} at {}: {}", change, changed, message);
                // The error is about the changed value's part of the file.
                prop_assert_eq!(top(&path), top(&changed), "{} for {:?} at {}", message, change, changed);
            }
            Err(other) => panic!("{other} for {change:?} at {changed}\n{text}"),
        }
    }
}

/// Regression cases: values near the edges, each named by its path.
#[test]
fn regression_documents() {
    for (change, expected) in [
        (
            "[routes.breaker]\nfailure_rate_window = 0",
            Some("routes[0].breaker.failure_rate_window"),
        ),
        (
            "[routes.timeouts]\nhandshake_timeout = \"0s\"",
            Some("routes[0].timeouts.handshake_timeout"),
        ),
        (
            "[routes.pool]\nmax_connections_per_key = 0",
            Some("routes[0].pool.max_connections_per_key"),
        ),
        (
            "[routes.breaker]\nfailure_rate_threshold = 1e308",
            Some("routes[0].breaker.failure_rate_threshold"),
        ),
    ] {
        let text = format!("{}{change}\n", super::ROUTE);
        match parse_and_build(&text) {
            Err(ConfigError::Invalid { path, .. }) => {
                assert_eq!(Some(path.as_str()), expected, "{change}")
            }
            other => assert!(expected.is_none(), "{change}: {other:?}"),
        }
    }
}
