//! Pure validation and naming rules, shared by the SQL functions, the catalog's
//! CHECK constraints and the GUC check hooks.  Nothing here touches PostgreSQL,
//! so `cargo test --lib` exercises it without a server.

use std::fmt;

/// Longest identifier PostgreSQL keeps whole (NAMEDATALEN - 1).
pub const MAX_PG_NAME_BYTES: usize = 63;
/// Longest `tenancy.schema_prefix` (SPEC §5).
pub const MAX_SCHEMA_PREFIX_BYTES: usize = 20;
/// Longest tenant name, in characters (SPEC §1).
pub const MAX_NAME_CHARS: usize = 255;

/// Why a tenant identifier was refused.  The Display text is the message tail
/// users see after `invalid tenant identifier "...":`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentifierError {
    Length(usize),
    FirstChar,
    LastChar,
    Char(char),
    DoubleHyphen,
    LooksLikeUuid,
}

impl fmt::Display for IdentifierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentifierError::Length(n) => {
                write!(f, "it is {n} characters long; 3 to 63 are allowed")
            }
            IdentifierError::FirstChar => f.write_str("it must start with a lowercase letter"),
            IdentifierError::LastChar => {
                f.write_str("it must end with a lowercase letter or a digit")
            }
            IdentifierError::Char(c) if c.is_control() || c.is_whitespace() => {
                write!(f, "the character U+{:04X} is not allowed", *c as u32)
            }
            IdentifierError::Char(c) => write!(f, "the character \"{c}\" is not allowed"),
            IdentifierError::DoubleHyphen => f.write_str("it must not contain \"--\""),
            IdentifierError::LooksLikeUuid => f.write_str("it would be read as a uuid"),
        }
    }
}

/// The tenant slug: `^[a-z][a-z0-9-]{1,61}[a-z0-9]$`, no `--`, and not
/// something PostgreSQL would parse as a uuid (so `set_tenant` can take
/// either form without ambiguity).
pub fn check_identifier(s: &str) -> Result<(), IdentifierError> {
    let n = s.chars().count();
    if !(3..=MAX_PG_NAME_BYTES).contains(&n) {
        return Err(IdentifierError::Length(n));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-'))
    {
        return Err(IdentifierError::Char(c));
    }
    let bytes = s.as_bytes();
    if !bytes[0].is_ascii_lowercase() {
        return Err(IdentifierError::FirstChar);
    }
    if bytes[bytes.len() - 1] == b'-' {
        return Err(IdentifierError::LastChar);
    }
    if s.contains("--") {
        return Err(IdentifierError::DoubleHyphen);
    }
    if parse_pg_uuid(s).is_some() {
        return Err(IdentifierError::LooksLikeUuid);
    }
    Ok(())
}

/// Why a tenant name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    Length(usize),
    Blank,
    Control(char),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Length(n) => write!(f, "it is {n} characters long; 1 to 255 are allowed"),
            NameError::Blank => f.write_str("it is blank"),
            NameError::Control(c) => {
                write!(f, "it contains the control character U+{:04X}", *c as u32)
            }
        }
    }
}

/// A display name: 1 to 255 characters, not only whitespace, no control characters.
pub fn check_name(s: &str) -> Result<(), NameError> {
    let n = s.chars().count();
    if n == 0 || n > MAX_NAME_CHARS {
        return Err(NameError::Length(n));
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(NameError::Control(c));
    }
    if s.trim().is_empty() {
        return Err(NameError::Blank);
    }
    Ok(())
}

/// Parses a uuid exactly as PostgreSQL's `uuid_in` does: 32 hex digits,
/// optionally wrapped in braces, with an optional hyphen after any group of
/// four digits.  Returns None for anything `uuid_in` would reject.
pub fn parse_pg_uuid(s: &str) -> Option<[u8; 16]> {
    let mut src = s.as_bytes();
    let braces = src.first() == Some(&b'{');
    if braces {
        src = &src[1..];
    }
    let mut out = [0u8; 16];
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    for (i, byte) in out.iter_mut().enumerate() {
        if src.len() < 2 {
            return None;
        }
        *byte = (hex(src[0])? << 4) | hex(src[1])?;
        src = &src[2..];
        if i % 2 == 1 && i < 15 && src.first() == Some(&b'-') {
            src = &src[1..];
        }
    }
    if braces {
        if src.first() != Some(&b'}') {
            return None;
        }
        src = &src[1..];
    }
    src.is_empty().then_some(out)
}

/// Why a schema prefix was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrefixError {
    Pattern,
    TooLong(usize),
}

impl fmt::Display for PrefixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrefixError::Pattern => f.write_str("it must match ^[a-z][a-z0-9_]*$"),
            PrefixError::TooLong(n) => write!(f, "it is {n} bytes long; at most 20 are allowed"),
        }
    }
}

/// `tenancy.schema_prefix`: `^[a-z][a-z0-9_]*$`, at most 20 bytes.
pub fn check_schema_prefix(s: &str) -> Result<(), PrefixError> {
    let b = s.as_bytes();
    if b.is_empty()
        || !b[0].is_ascii_lowercase()
        || !b
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
    {
        return Err(PrefixError::Pattern);
    }
    if b.len() > MAX_SCHEMA_PREFIX_BYTES {
        return Err(PrefixError::TooLong(b.len()));
    }
    Ok(())
}

/// The schema (or database) name of a tenant: prefix plus the identifier with
/// `-` turned to `_`.  None when the result would exceed 63 bytes, which
/// PostgreSQL would silently truncate (and so could collide).
pub fn tenant_object_name(prefix: &str, identifier: &str) -> Option<String> {
    let name = format!("{prefix}{}", identifier.replace('-', "_"));
    (name.len() <= MAX_PG_NAME_BYTES).then_some(name)
}

/// Whether `name` could be a tenant's schema: every such name is either a
/// prefix (`^[a-z][a-z0-9_]*$`) plus an identifier with `-` turned into `_`,
/// or a `schema_name` given to create_tenant (`check_schema_name`), so it is
/// made of `[a-z0-9_]` and starts with a letter (the catalog's CHECK holds
/// every schema_name to that).  Lets set_tenant skip the catalog lookup for
/// search_path entries like `"$user"`.
pub fn could_be_tenant_schema(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= MAX_PG_NAME_BYTES
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Why a `schema_name` given to create_tenant is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum SchemaNameError {
    Length(usize),
    FirstChar,
    Char(char),
    Reserved,
}

impl fmt::Display for SchemaNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaNameError::Length(0) => f.write_str("it is empty"),
            SchemaNameError::Length(n) => write!(f, "it is {n} bytes long; at most 63 are allowed"),
            SchemaNameError::FirstChar => f.write_str("it must start with a lowercase letter"),
            SchemaNameError::Char(c) => write!(
                f,
                "{c:?} is not allowed; use lowercase letters, digits and _"
            ),
            SchemaNameError::Reserved => f.write_str("it is a schema of PostgreSQL or of tenancy"),
        }
    }
}

/// A schema tenant's own schema name (SPEC §12): lowercase letters, digits
/// and `_`, starting with a letter (as every tenant schema name does, see
/// `could_be_tenant_schema`), at most 63 bytes (PostgreSQL would truncate a
/// longer one), not `public`, `tenancy`, `information_schema` nor `pg_*`.
pub fn check_schema_name(s: &str) -> Result<(), SchemaNameError> {
    if s.is_empty() || s.len() > MAX_PG_NAME_BYTES {
        return Err(SchemaNameError::Length(s.len()));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Err(SchemaNameError::Char(c));
    }
    if !s.as_bytes()[0].is_ascii_lowercase() {
        return Err(SchemaNameError::FirstChar);
    }
    if matches!(s, "public" | "tenancy" | "information_schema") || s.starts_with("pg_") {
        return Err(SchemaNameError::Reserved);
    }
    Ok(())
}

/// What tenancy takes its per-tenant locks for (`db::lock_tenant`).
#[derive(Clone, Copy)]
pub enum LockPurpose {
    Migrate = 0x6d69_6772,   // "migr"
    RateLimit = 0x7261_7465, // "rate"
    Request = 0x7265_7173,   // "reqs"
    /// Where a tenant's data lives (operations::moving): requests hold it
    /// shared, `move_tenant` exclusively.
    Placement = 0x706c_6163, // "plac"
}

/// The 64-bit key of tenancy's transaction-level lock on (purpose, tenant):
/// SipHash (Rust's default hasher, fixed keys) of the purpose and the whole
/// uuid.  Two tenants share a key only by a 64-bit collision, which ids
/// chosen on purpose cannot produce without about 2^64 tries (a plain fold
/// of the uuid's halves could be inverted to make a tenant whose requests
/// wait on another's).
pub fn tenant_lock_key(purpose: LockPurpose, tenant: &[u8; 16]) -> i64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write_u32(purpose as u32);
    h.write(tenant);
    h.finish() as i64
}

/// The key of request slot `slot` of a tenant (max_concurrent_requests):
/// as [`tenant_lock_key`], with the slot's number in the hash.
pub fn tenant_slot_key(tenant: &[u8; 16], slot: u32) -> i64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write_u32(LockPurpose::Request as u32);
    h.write(tenant);
    h.write_u32(slot);
    h.finish() as i64
}

/// A tenant's own rate limit, from its metadata `rate_limit_per_minute`: a
/// JSON number or string of 1 to 18 digits, else None (the GUC applies).
pub fn metadata_rate_limit(value: Option<&serde_json::Value>) -> Option<i64> {
    let text = match value? {
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => s.clone(),
        _ => return None,
    };
    (!text.is_empty() && text.len() <= 18 && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())?
}

/// Case folding used by `search_tenants`, both in its index and in its match.
pub fn search_fold(s: &str) -> String {
    s.to_lowercase()
}

/// The index keys of substring search: every distinct 2- and 3-character
/// window of the folded identifier and of the folded name.  A query's grams
/// ([`query_grams`]) are a subset of a row's grams whenever the query is a
/// substring of either field, so a GIN `@>` finds every candidate.
pub fn search_grams(identifier: &str, name: &str) -> Vec<String> {
    let mut grams = Vec::new();
    for field in [identifier, name] {
        let chars: Vec<char> = search_fold(field).chars().collect();
        for width in [2, 3] {
            for w in chars.windows(width) {
                grams.push(w.iter().collect::<String>());
            }
        }
    }
    grams.sort_unstable();
    grams.dedup();
    grams
}

/// The grams a query must find in a row: its 3-character windows, or the
/// whole query when it is 2 characters long.  Shorter queries give no keys
/// (every row is a candidate).
pub fn query_grams(query: &str) -> Vec<String> {
    let chars: Vec<char> = search_fold(query).chars().collect();
    let mut grams: Vec<String> = match chars.len() {
        0 | 1 => Vec::new(),
        2 => vec![chars.iter().collect()],
        _ => chars.windows(3).map(|w| w.iter().collect()).collect(),
    };
    grams.sort_unstable();
    grams.dedup();
    grams
}

/// The index keys of substring search from 0.3.0 on: every distinct 1-, 2-
/// and 3-character window of the folded value (an identifier, or a name:
/// each has its own index).  With the 1-character windows a one-letter
/// query finds its candidates in the index too, instead of reading every row.
pub fn search_keys(value: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let chars: Vec<char> = search_fold(value).chars().collect();
    for width in [1, 2, 3] {
        for w in chars.windows(width) {
            keys.push(w.iter().collect::<String>());
        }
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// The keys a query must find among a row's [`search_keys`]: its
/// 3-character windows, or the whole query when it is 1 or 2 characters
/// long (none for the empty query, which every row contains).
pub fn query_keys(query: &str) -> Vec<String> {
    let chars: Vec<char> = search_fold(query).chars().collect();
    let mut keys: Vec<String> = match chars.len() {
        0 => Vec::new(),
        1 | 2 => vec![chars.iter().collect()],
        _ => chars.windows(3).map(|w| w.iter().collect()).collect(),
    };
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Whether `s` holds only characters an identifier can (`[a-z0-9-]`): else
/// no identifier can start with it or contain it.
pub fn identifier_alphabet(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Parses the comma-separated `tenancy.premium_tiers` list.
pub fn parse_tier_list(s: &str) -> Result<Vec<String>, String> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|t| {
            let t = t.trim();
            if t.is_empty() {
                Err("it contains an empty tier".to_string())
            } else if t.chars().any(char::is_control) {
                Err("it contains a control character".to_string())
            } else {
                Ok(t.to_string())
            }
        })
        .collect()
}

/// The status transitions of SPEC §2: `provisioning → active`,
/// `active ⇄ suspended`, `active | suspended → deleted`; setting the current
/// status again is allowed (a no-op).  `deleted` is final.
pub fn transition_allowed(from: &str, to: &str) -> bool {
    from == to
        || matches!(
            (from, to),
            ("provisioning", "active")
                | ("active", "suspended")
                | ("suspended", "active")
                | ("active", "deleted")
                | ("suspended", "deleted")
        )
}

/// Splits a `search_path` value into its schema names the way PostgreSQL
/// reads it: comma-separated, double-quoted names kept as written (with `""`
/// for a quote), unquoted names folded to lower case.
pub fn split_search_path(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = path.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut item = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        item.push('"');
                    } else {
                        break;
                    }
                } else {
                    item.push(c);
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                item.push(c.to_ascii_lowercase());
                chars.next();
            }
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek() == Some(&',') {
            chars.next();
        }
        if !item.is_empty() {
            out.push(item);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_accepted() {
        for ok in [
            "abc",
            "acme-corp",
            "a1b",
            "tenant-42",
            "x0-y1-z2",
            &format!("a{}", "b".repeat(62)),
        ] {
            assert_eq!(check_identifier(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn identifiers_refused() {
        let long = format!("a{}", "b".repeat(63));
        let cases: &[(&str, IdentifierError)] = &[
            ("", IdentifierError::Length(0)),
            ("ab", IdentifierError::Length(2)),
            (&long, IdentifierError::Length(64)),
            ("1abc", IdentifierError::FirstChar),
            ("-abc", IdentifierError::FirstChar),
            ("abc-", IdentifierError::LastChar),
            ("Acme", IdentifierError::Char('A')),
            ("ac_me", IdentifierError::Char('_')),
            ("ac me", IdentifierError::Char(' ')),
            ("acmé", IdentifierError::Char('é')),
            ("ac\0me", IdentifierError::Char('\0')),
            ("a'; drop table x; --", IdentifierError::Char('\'')),
            ("ac--me", IdentifierError::DoubleHyphen),
            (
                "abcdef0123456789abcdef0123456789",
                IdentifierError::LooksLikeUuid,
            ),
            (
                "abcdef01-2345-6789-abcd-ef0123456789",
                IdentifierError::LooksLikeUuid,
            ),
            (
                "abcd-ef01-2345-6789-abcd-ef01-2345-6789",
                IdentifierError::LooksLikeUuid,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(check_identifier(input).as_ref(), Err(want), "{input:?}");
        }
    }

    #[test]
    fn tenant_schema_names_are_recognisable() {
        for prefix in ["tenant_", "t", "acme_tenants_"] {
            for identifier in ["abc", "acme-corp", "x0-y1-z2"] {
                let name = tenant_object_name(prefix, identifier).unwrap();
                assert!(could_be_tenant_schema(&name), "{name}");
            }
        }
        for given in ["tenant_abc", "a1", "x_", "a"] {
            assert_eq!(check_schema_name(given), Ok(()), "{given}");
            assert!(could_be_tenant_schema(given), "{given}");
        }
        for other in [
            "$user",
            "",
            "Public",
            "1abc",
            "_x",
            "my schema",
            "t\u{e9}",
            &"a".repeat(64),
        ] {
            assert!(!could_be_tenant_schema(other), "{other:?}");
        }
    }

    #[test]
    fn schema_names_refused() {
        let long = "a".repeat(64);
        let cases: &[(&str, SchemaNameError)] = &[
            ("", SchemaNameError::Length(0)),
            (&long, SchemaNameError::Length(64)),
            ("Tenant_abc", SchemaNameError::Char('T')),
            ("1abc", SchemaNameError::FirstChar),
            ("_abc", SchemaNameError::FirstChar),
            ("tenant-abc", SchemaNameError::Char('-')),
            ("tenant abc", SchemaNameError::Char(' ')),
            ("t\u{e9}", SchemaNameError::Char('\u{e9}')),
            ("public", SchemaNameError::Reserved),
            ("tenancy", SchemaNameError::Reserved),
            ("information_schema", SchemaNameError::Reserved),
            ("pg_catalog", SchemaNameError::Reserved),
            ("pg_temp_3", SchemaNameError::Reserved),
        ];
        for (input, want) in cases {
            assert_eq!(check_schema_name(input).as_ref(), Err(want), "{input:?}");
        }
        assert_eq!(check_schema_name(&"a".repeat(63)), Ok(()));
    }

    #[test]
    fn lock_keys_differ_by_purpose_and_tenant() {
        let a = [1u8; 16];
        let mut b = a;
        b[15] = 2;
        let mut c = a;
        c[0] = 2;
        let keys = [
            tenant_lock_key(LockPurpose::Migrate, &a),
            tenant_lock_key(LockPurpose::RateLimit, &a),
            tenant_lock_key(LockPurpose::Placement, &a),
            tenant_lock_key(LockPurpose::Migrate, &b),
            tenant_lock_key(LockPurpose::Migrate, &c),
        ];
        for i in 0..keys.len() {
            for j in i + 1..keys.len() {
                assert_ne!(keys[i], keys[j], "{i} {j}");
            }
        }
        assert_eq!(keys[0], tenant_lock_key(LockPurpose::Migrate, &a));
    }

    #[test]
    fn rate_limits_from_metadata() {
        use serde_json::json;
        let cases = [
            (json!(600), Some(600)),
            (json!("600"), Some(600)),
            (json!("0"), Some(0)),
            (
                json!(999_999_999_999_999_999i64),
                Some(999_999_999_999_999_999),
            ),
            (json!("1000000000000000000"), None),
            (json!(-1), None),
            (json!(1.5), None),
            (json!(""), None),
            (json!(" 60"), None),
            (json!(null), None),
            (json!([60]), None),
        ];
        for (value, want) in cases {
            assert_eq!(metadata_rate_limit(Some(&value)), want, "{value}");
        }
        assert_eq!(metadata_rate_limit(None), None);
    }

    #[test]
    fn uuid_parsing_matches_postgres() {
        let canonical = [
            0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38,
            0x0a, 0x11,
        ];
        for ok in [
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
            "a0eebc999c0b4ef8bb6d6bb9bd380a11",
            "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11",
            "{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}",
        ] {
            assert_eq!(parse_pg_uuid(ok), Some(canonical), "{ok}");
        }
        for bad in [
            "",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111",
            "a0eebc99--9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0e-ebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-",
            "g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "acme-corp",
        ] {
            assert_eq!(parse_pg_uuid(bad), None, "{bad}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(check_name("Acme Corporation"), Ok(()));
        assert_eq!(check_name("Ünïcødé 株式会社"), Ok(()));
        assert_eq!(check_name(&"é".repeat(255)), Ok(()));
        assert_eq!(check_name(""), Err(NameError::Length(0)));
        assert_eq!(check_name(&"x".repeat(256)), Err(NameError::Length(256)));
        assert_eq!(check_name("   "), Err(NameError::Blank));
        assert_eq!(check_name("\u{3000}"), Err(NameError::Blank));
        assert_eq!(check_name("a\tb"), Err(NameError::Control('\t')));
        assert_eq!(check_name("a\u{7f}"), Err(NameError::Control('\u{7f}')));
    }

    #[test]
    fn schema_prefixes() {
        assert_eq!(check_schema_prefix("tenant_"), Ok(()));
        assert_eq!(check_schema_prefix("t"), Ok(()));
        assert_eq!(check_schema_prefix(""), Err(PrefixError::Pattern));
        assert_eq!(check_schema_prefix("_t"), Err(PrefixError::Pattern));
        assert_eq!(check_schema_prefix("Tenant_"), Err(PrefixError::Pattern));
        assert_eq!(check_schema_prefix("ten-ant"), Err(PrefixError::Pattern));
        assert_eq!(
            check_schema_prefix("abcdefghijklmnopqrstu"),
            Err(PrefixError::TooLong(21))
        );
    }

    #[test]
    fn object_names() {
        assert_eq!(
            tenant_object_name("tenant_", "acme-corp").as_deref(),
            Some("tenant_acme_corp")
        );
        let id56 = format!("a{}", "b".repeat(55));
        assert_eq!(
            tenant_object_name("tenant_", &id56).map(|s| s.len()),
            Some(63)
        );
        let id57 = format!("a{}", "b".repeat(56));
        assert_eq!(tenant_object_name("tenant_", &id57), None);
    }

    #[test]
    fn grams_cover_every_substring() {
        let grams = search_grams("acme-corp", "Acme Corporation");
        for q in ["acme", "ME-C", "corpora", "ion", "co", "e-"] {
            let qg = query_grams(q);
            assert!(!qg.is_empty());
            assert!(qg.iter().all(|g| grams.contains(g)), "{q}");
        }
        assert!(query_grams("zz").iter().any(|g| !grams.contains(g)));
        assert!(query_grams("a").is_empty());
        assert_eq!(
            query_grams("50%_"),
            vec!["0%_".to_string(), "50%".to_string()]
        );
    }

    #[test]
    fn keys_cover_every_substring() {
        let keys = [search_keys("acme-corp"), search_keys("Acme Corporation")].concat();
        for q in ["a", "M", "acme", "ME-C", "corpora", "ion", "co", "e-", " "] {
            let qk = query_keys(q);
            assert!(!qk.is_empty());
            assert!(qk.iter().all(|k| keys.contains(k)), "{q}");
        }
        assert!(query_keys("q").iter().any(|k| !keys.contains(k)));
        assert!(query_keys("").is_empty());
        assert_eq!(
            query_keys("50%_"),
            vec!["0%_".to_string(), "50%".to_string()]
        );
        assert!(
            identifier_alphabet("tnt-42")
                && !identifier_alphabet("a b")
                && !identifier_alphabet("A")
        );
    }

    #[test]
    fn tier_lists() {
        assert_eq!(
            parse_tier_list("premium, enterprise").unwrap(),
            vec!["premium", "enterprise"]
        );
        assert_eq!(parse_tier_list("").unwrap(), Vec::<String>::new());
        assert!(parse_tier_list("premium,,gold").is_err());
    }

    #[test]
    fn transitions() {
        let all = ["provisioning", "active", "suspended", "deleted"];
        let allowed: Vec<(&str, &str)> = all
            .iter()
            .flat_map(|a| all.iter().map(move |b| (*a, *b)))
            .filter(|(a, b)| a != b && transition_allowed(a, b))
            .collect();
        assert_eq!(
            allowed,
            vec![
                ("provisioning", "active"),
                ("active", "suspended"),
                ("active", "deleted"),
                ("suspended", "active"),
                ("suspended", "deleted"),
            ]
        );
        assert!(all.iter().all(|s| transition_allowed(s, s)));
    }

    #[test]
    fn search_paths() {
        assert_eq!(
            split_search_path(r#""$user", public"#),
            vec!["$user", "public"]
        );
        assert_eq!(
            split_search_path("tenant_acme, Public,pg_temp"),
            vec!["tenant_acme", "public", "pg_temp"]
        );
        assert_eq!(
            split_search_path(r#""My ""Schema""",x"#),
            vec![r#"My "Schema""#, "x"]
        );
        assert_eq!(split_search_path(""), Vec::<String>::new());
        assert_eq!(split_search_path("  "), Vec::<String>::new());
    }

    /// A small deterministic generator for the property tests below
    /// (xorshift64*): thousands of inputs, the same on every run.
    struct Gen(u64);
    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn string(&mut self, alphabet: &[char], max_len: usize) -> String {
            let len = self.below(max_len + 1);
            (0..len)
                .map(|_| alphabet[self.below(alphabet.len())])
                .collect()
        }
    }

    /// PostgreSQL's uuid_in rule, written independently of parse_pg_uuid.
    fn reference_is_uuid(s: &str) -> bool {
        let inner = match s.strip_prefix('{') {
            Some(rest) => match rest.strip_suffix('}') {
                Some(inner) => inner,
                None => return false,
            },
            None => s,
        };
        let (mut digits, mut last_hyphen) = (0, false);
        for c in inner.chars() {
            if c.is_ascii_hexdigit() {
                digits += 1;
                last_hyphen = false;
            } else if c == '-' && !last_hyphen && digits > 0 && digits % 4 == 0 && digits < 32 {
                last_hyphen = true;
            } else {
                return false;
            }
        }
        digits == 32 && !last_hyphen
    }

    fn reference_identifier(s: &str) -> bool {
        let chars: Vec<char> = s.chars().collect();
        (3..=63).contains(&chars.len())
            && chars[0].is_ascii_lowercase()
            && chars
                .iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
            && *chars.last().unwrap() != '-'
            && !s.contains("--")
            && !reference_is_uuid(s)
    }

    #[test]
    fn property_identifier_rule() {
        let alphabet: Vec<char> = "abcdef-0123456789xyz-A_ é\0{}".chars().collect();
        let mut g = Gen(0x5eed_1234_abcd_ef01);
        let mut accepted = 0;
        for _ in 0..20_000 {
            let s = g.string(&alphabet, 70);
            let ok = check_identifier(&s).is_ok();
            assert_eq!(ok, reference_identifier(&s), "{s:?}");
            accepted += ok as usize;
        }
        assert!(
            accepted > 100,
            "the generator must also produce valid identifiers ({accepted})"
        );
    }

    #[test]
    fn property_uuid_forms() {
        let mut g = Gen(0x0dd_ba11_cafe_f00d);
        for _ in 0..5_000 {
            let bytes: [u8; 16] = std::array::from_fn(|_| g.next() as u8);
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let hyphenated = format!(
                "{}-{}-{}-{}-{}",
                &hex[0..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..32]
            );
            for form in [
                hex.clone(),
                hyphenated.clone(),
                hyphenated.to_uppercase(),
                format!("{{{hyphenated}}}"),
            ] {
                assert_eq!(parse_pg_uuid(&form), Some(bytes), "{form}");
                assert!(reference_is_uuid(&form), "{form}");
            }
        }
        let alphabet: Vec<char> = "0123456789abcdefABCDEF-{}g ".chars().collect();
        for _ in 0..20_000 {
            let s = g.string(&alphabet, 40);
            assert_eq!(parse_pg_uuid(&s).is_some(), reference_is_uuid(&s), "{s:?}");
        }
    }

    #[test]
    fn property_names() {
        let alphabet: Vec<char> = "ab Z\t\u{3000}é\u{7}\n株".chars().collect();
        let mut g = Gen(0xfeed_beef_0000_0001);
        for _ in 0..20_000 {
            let s = g.string(&alphabet, 300);
            let n = s.chars().count();
            let want =
                (1..=255).contains(&n) && !s.chars().any(char::is_control) && !s.trim().is_empty();
            assert_eq!(check_name(&s).is_ok(), want, "{s:?}");
        }
    }

    #[test]
    fn property_search_finds_every_substring() {
        let id_alphabet: Vec<char> = "abc-123".chars().collect();
        let name_alphabet: Vec<char> = "AbC xyZ%_\\é".chars().collect();
        let mut g = Gen(0x1234_5678_9abc_def0);
        for _ in 0..2_000 {
            let identifier = g.string(&id_alphabet, 20);
            let name = g.string(&name_alphabet, 30);
            let grams = search_grams(&identifier, &name);
            for field in [&identifier, &name] {
                let folded: Vec<char> = search_fold(field).chars().collect();
                for start in 0..folded.len() {
                    for end in start + 1..=folded.len().min(start + 8) {
                        let q: String = folded[start..end].iter().collect();
                        assert!(
                            query_grams(&q).iter().all(|k| grams.contains(k)),
                            "{q:?} in {identifier:?}/{name:?}"
                        );
                    }
                }
            }
        }
    }
}
