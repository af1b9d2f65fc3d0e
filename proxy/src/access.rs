//! Per-route access rules: 57 nodes on one node lose the per-node ACLs that told them apart,
//! so a route can name who may reach it (by user login, group or the source node's tags).

use tailshift_routes::AccessRule;

/// Whether a requester passes: no rules admit every tailnet peer; otherwise any matching rule.
/// Groups and tags come from the whois answer; without one, only user rules can match.
pub fn admits(
    rules: &[AccessRule],
    login: Option<&str>,
    groups: &[String],
    tags: &[String],
) -> bool {
    if rules.is_empty() {
        return true;
    }
    rules.iter().any(|r| match r {
        AccessRule::User(u) => login.is_some_and(|l| l.eq_ignore_ascii_case(u)),
        AccessRule::Group(g) => groups.iter().any(|x| x == g),
        AccessRule::Tag(t) => tags.iter().any(|x| x == t),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_admit_by_user_group_or_tag() {
        assert!(admits(&[], None, &[], &[]));
        let rules =
            [AccessRule::User("alice@example.com".into()), AccessRule::Tag("tag:admin".into())];
        assert!(admits(&rules, Some("Alice@Example.com"), &[], &[]));
        assert!(!admits(&rules, Some("bob@example.com"), &[], &[]));
        assert!(!admits(&rules, None, &[], &[]));
        assert!(admits(&rules, None, &[], &["tag:admin".to_string()]));
        assert!(admits(&[AccessRule::Group("ops".into())], None, &["ops".to_string()], &[]));
    }
}
