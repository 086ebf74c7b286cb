//! Product access as the organization Admin API offers it: which roles each product has, and
//! the one role and resource a call names (API-NOTES §2.5). Pure: `workflows check` refuses a
//! pair the API does not offer, and the grant step sends exactly what this returns.

/// A product, the roles the Admin API offers on it (the catalog's short names; the API's are
/// `atlassian/<role>`). `user-access-admin` administers the product's users without using it.
const OFFERED: &[(&str, &[&str])] = &[
    ("jira-software", &["user", "admin", "user-access-admin"]),
    (
        "jira-servicedesk",
        // An agent is a `user`; help-center customers and stakeholders are not billed.
        &[
            "user",
            "admin",
            "customer",
            "stakeholder",
            "user-access-admin",
        ],
    ),
    ("jira-core", &["user", "admin", "user-access-admin"]),
    (
        "jira-product-discovery",
        // Contributors view, comment and vote without a creator seat.
        &["user", "admin", "contributor", "user-access-admin"],
    ),
    // A guest sees the one space they are given.
    (
        "confluence",
        &["user", "admin", "guest", "user-access-admin"],
    ),
    ("statuspage", &["user", "admin", "user-access-admin"]),
    ("opsgenie", &["user", "admin", "user-access-admin"]),
    ("compass", &["user", "admin", "user-access-admin"]),
];

/// The products the catalog may name.
pub fn products() -> impl Iterator<Item = &'static str> {
    OFFERED.iter().map(|(product, _)| *product)
}

/// The roles the Admin API offers on `product`, or `None` for a product it does not know.
pub fn roles(product: &str) -> Option<&'static [&'static str]> {
    OFFERED
        .iter()
        .find(|(p, _)| *p == product)
        .map(|(_, roles)| *roles)
}

/// One role on one resource: the whole body of an assign or revoke call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// `atlassian/user`, `atlassian/admin`, …
    pub role: String,
    /// `ari:cloud:<product>::site/<siteId>`
    pub resource: String,
}

/// What to send to give `role` on `product` of the site `site_id`, or why the API would refuse
/// it. Jira's product-admin role lives on the Jira platform's resource, whichever Jira product
/// the catalog names (the per-product `jira-admin` resource is refused, ADMIN-UAM-400-5).
pub fn assignment(product: &str, role: &str, site_id: &str) -> Result<Assignment, String> {
    let offered = roles(product).ok_or_else(|| {
        format!(
            "unknown Atlassian product `{product}`: one of {}",
            products().collect::<Vec<_>>().join(", ")
        )
    })?;
    if !offered.contains(&role) {
        return Err(format!(
            "the Admin API offers no `{role}` role on {product}: one of {}",
            offered.join(", ")
        ));
    }
    let site_id = site_id.trim();
    if site_id.is_empty() || site_id.contains(['/', ':']) {
        return Err(format!("`{site_id}` is not a site's cloud id"));
    }
    Ok(Assignment {
        role: format!("atlassian/{role}"),
        resource: format!(
            "ari:cloud:{}::site/{site_id}",
            resource_product(product, role)
        ),
    })
}

/// The product whose resource `role` on `product` is given on: Jira's product-admin role lives
/// on the Jira platform's resource, whichever Jira product names it, so two catalog entries
/// naming different Jira products' `admin` are one and the same access.
pub fn resource_product<'a>(product: &'a str, role: &str) -> &'a str {
    if role == "admin" && product.starts_with("jira-") {
        "jira"
    } else {
        product
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_offered_pair_names_a_site_resource() {
        for product in products() {
            for role in roles(product).unwrap_or_default() {
                let a = assignment(product, role, "c0ffee").expect("offered");
                assert_eq!(a.role, format!("atlassian/{role}"));
                assert!(a.resource.ends_with("::site/c0ffee"), "{a:?}");
            }
        }
    }

    #[test]
    fn jira_product_admin_is_on_the_jira_resource() {
        for product in [
            "jira-software",
            "jira-servicedesk",
            "jira-product-discovery",
        ] {
            assert_eq!(
                assignment(product, "admin", "s1"),
                Ok(Assignment {
                    role: "atlassian/admin".into(),
                    resource: "ari:cloud:jira::site/s1".into()
                })
            );
        }
        assert_eq!(
            assignment("jira-servicedesk", "user", "s1").map(|a| a.resource),
            Ok("ari:cloud:jira-servicedesk::site/s1".into())
        );
        assert_eq!(
            assignment("confluence", "admin", "s1").map(|a| a.resource),
            Ok("ari:cloud:confluence::site/s1".into())
        );
    }

    #[test]
    fn pairs_the_api_does_not_offer_are_refused() {
        for (product, role, says) in [
            ("jira", "user", "unknown Atlassian product `jira`"),
            ("confluence", "customer", "no `customer` role on confluence"),
            ("jira-software", "guest", "no `guest` role"),
            (
                "jira-software",
                "atlassian/user",
                "no `atlassian/user` role",
            ),
        ] {
            let err = assignment(product, role, "s1").expect_err(says);
            assert!(err.contains(says), "{err}");
        }
        assert!(assignment("confluence", "user", "").is_err());
        assert!(assignment("confluence", "user", "a/b").is_err());
    }
}
