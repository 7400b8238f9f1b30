//! The builder: data from constants, the default size from the core table, and typed errors for
//! bad values.

use wsfirst_core::limits::DEFAULT_MAX_MESSAGE_SIZE;

use super::{ALLOW, HOSTS, openai_table};
use crate::{ConfigErrorKind, EligibilityTable};

#[test]
fn pairs_and_hosts_come_from_plain_data() {
    let table = openai_table();
    assert!(table.is_allowed("openai", "openai-responses"));
    assert!(!table.is_allowed("openai-codex", "openai-codex-responses"));
    assert_eq!(
        table.provider_hosts("openai").collect::<Vec<_>>(),
        ["api.openai.com"]
    );
    assert_eq!(table.override_header(), None);

    // Slices of constants, owned strings and references to them work alike.
    let owned: Vec<(String, String)> = vec![("p".into(), "a".into()), ("p".into(), "b".into())];
    let table = EligibilityTable::builder()
        .allow_pairs(ALLOW.iter().copied())
        .allow_pairs(owned.iter().map(|(p, a)| (p, a)))
        .deny_pairs(owned.iter().skip(1).cloned())
        .provider_hosts(HOSTS.to_vec())
        .provider_hosts([
            ("openai", "eu.api.openai.com"),
            ("openai", "api.openai.com"),
        ])
        .build()
        .unwrap();
    assert!(table.is_allowed("openai", "openai-responses"));
    assert!(table.is_allowed("p", "a"));
    assert!(!table.is_allowed("p", "b"));
    assert_eq!(
        table.provider_hosts("openai").collect::<Vec<_>>(),
        ["api.openai.com", "eu.api.openai.com"]
    );
}

#[test]
fn the_default_message_size_is_the_core_default() {
    let table = EligibilityTable::builder().build().unwrap();
    assert_eq!(table.max_message_size(), DEFAULT_MAX_MESSAGE_SIZE as u64);
    assert_eq!(table.max_message_size(), 16 << 20);
}

#[test]
fn zero_message_size_is_rejected() {
    let error = EligibilityTable::builder()
        .max_message_size(0)
        .build()
        .unwrap_err();
    assert_eq!(error.kind(), &ConfigErrorKind::Zero);
    assert_eq!(error.field(), "max_message_size");
    assert_eq!(
        error.to_string(),
        "invalid eligibility table: max_message_size must not be zero"
    );
    // A later valid value wins: the size is checked when the table is built.
    let table = EligibilityTable::builder()
        .max_message_size(0)
        .max_message_size(1)
        .build();
    assert_eq!(table.map(|table| table.max_message_size()), Ok(1));
}

#[test]
fn empty_names_in_pairs_are_rejected() {
    let cases = [
        (
            EligibilityTable::builder().allow("", "a"),
            "allow_pairs",
            "invalid eligibility table: allow_pairs: the provider must not be empty",
        ),
        (
            EligibilityTable::builder().deny_pairs([("p", "")]),
            "deny_pairs",
            "invalid eligibility table: deny_pairs: the api of provider \"p\" must not be empty",
        ),
        (
            EligibilityTable::builder().provider_host("", "h.example"),
            "provider_hosts",
            "invalid eligibility table: provider_hosts: the provider must not be empty",
        ),
    ];
    for (builder, field, message) in cases {
        let error = builder.build().unwrap_err();
        assert_eq!(error.field(), field);
        assert_eq!(error.to_string(), message);
    }
}

#[test]
fn hosts_must_be_bare() {
    for host in [
        "https://api.openai.com",
        "api.openai.com:443",
        "api.openai.com/v1",
        "user@api.openai.com",
        "::1",
        "",
    ] {
        let error = EligibilityTable::builder()
            .provider_host("openai", host)
            .build()
            .unwrap_err();
        assert_eq!(error.field(), "provider_hosts");
        assert!(
            error
                .to_string()
                .contains(&format!("invalid host {host:?} for provider \"openai\"")),
            "{error}"
        );
    }
    let error = EligibilityTable::builder()
        .provider_host("openai", "api.openai.com:443")
        .build()
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid eligibility table: provider_hosts: invalid host \"api.openai.com:443\" for \
         provider \"openai\": expected a host name without scheme, port or path, such as \
         \"api.openai.com\""
    );
    for host in ["api.openai.com", "127.0.0.1", "[::1]", "LOCALHOST"] {
        assert!(
            EligibilityTable::builder()
                .provider_host("p", host)
                .build()
                .is_ok(),
            "{host:?}"
        );
    }
}

#[test]
fn the_first_bad_value_is_reported() {
    let error = EligibilityTable::builder()
        .allow("p", "a")
        .deny("", "a")
        .provider_host("p", "h:1")
        .max_message_size(0)
        .build()
        .unwrap_err();
    assert_eq!(error.field(), "deny_pairs");
}
