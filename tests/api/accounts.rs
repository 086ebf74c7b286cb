//! People to Atlassian accounts against the fake cloud and a real database: the account index
//! read once, lookups that make no Admin API call, a miss found by one targeted query, matches
//! kept per organization, and a site whose answer contradicts a stored match.

use chrono::TimeDelta;
use tollgate::clock::SystemClock;
use tollgate::orgchart::{AccountId, Email, OrgIndex, OrgSnapshot, Person, PersonId};
use tollgate::people::accounts;
use tollgate::store::accounts as stored;
use tollgate_fakes::atlassian::World;

use crate::atlassian_ops::{Cloud, all_credentials, cloud_with};
use crate::support::{self, TestDatabase};

const DAN: &str = "5b10ac8d82e05b22cc7d4e02";
const OLA: &str = "5b10ac8d82e05b22cc7d4e03";

fn person(id: &str, email: &str) -> Person {
    Person::new(PersonId(id.into()), Email::parse(email).expect("email"), id)
}

fn org() -> OrgIndex {
    OrgIndex::build(OrgSnapshot {
        people: vec![
            person("p-dan", "dan.diaz@acme.io"),
            person("p-ola", "ola.olsen@acme.io"),
            person("p-new", "nina.new@acme.io"),
        ],
        groups: Vec::new(),
        departments: Vec::new(),
    })
}

fn calls(cloud: &Cloud, prefix: &str) -> usize {
    cloud
        .fake
        .recorded()
        .iter()
        .filter(|r| r.path.starts_with(prefix))
        .count()
}

#[tokio::test]
async fn accounts_come_from_the_index_and_a_miss_costs_one_targeted_query() {
    let db = TestDatabase::create().await;
    let store = support::store(&db).await;
    let cloud = cloud_with(World::sample(), all_credentials).await;
    let (a, site, clock, org) = (&cloud.atlassian, &cloud.jira, SystemClock, org());
    // Ola's email is hidden on the site and she is not in SCIM: only the organization's list
    // knows her. The first lookup reads the index once (no full sync has run yet).
    let ola = org.person(org.by_id(&PersonId("p-ola".into())).expect("ola"));
    let found = accounts::account_for(&store, a, site, ola, &clock).await;
    assert_eq!(found.expect("lookup"), Some(AccountId(OLA.into())));
    let listed = calls(&cloud, "/admin/v1/orgs/org-acme/users");
    assert!(listed >= 1, "the index was read");
    // Dan, another person: a local read of the index, no Admin API call at all.
    let before = calls(&cloud, "/admin/");
    let dan = org.person(org.by_id(&PersonId("p-dan".into())).expect("dan"));
    let found = accounts::account_for(&store, a, site, dan, &clock).await;
    assert_eq!(found.expect("lookup"), Some(AccountId(DAN.into())));
    assert_eq!(calls(&cloud, "/admin/"), before);
    // Nina joined after the index was read: one SCIM query finds her, no listing.
    cloud
        .fake
        .world()
        .users
        .push(tollgate_fakes::atlassian::FakeUser {
            account_id: "acc-nina".into(),
            email: "nina.new@acme.io".into(),
            display_name: "Nina New".into(),
            active: true,
            email_visible: true,
        });
    let (admin_before, all_before) = (calls(&cloud, "/admin/"), cloud.fake.recorded().len());
    let nina = org.person(org.by_id(&PersonId("p-new".into())).expect("nina"));
    let found = accounts::account_for(&store, a, site, nina, &clock).await;
    assert_eq!(found.expect("lookup"), Some(AccountId("acc-nina".into())));
    assert_eq!(
        calls(&cloud, "/admin/"),
        admin_before,
        "no walk of the organization"
    );
    assert!(
        cloud.fake.recorded().len() - all_before <= 2,
        "one targeted query"
    );
    // Stored per organization and person: a second lookup calls nothing.
    let all_before = cloud.fake.recorded().len();
    accounts::account_for(&store, a, site, nina, &clock)
        .await
        .expect("again");
    assert_eq!(cloud.fake.recorded().len(), all_before);
    let matched = stored::match_for(&store, "org-acme", &PersonId("p-new".into()))
        .await
        .expect("read");
    assert_eq!(matched.map(|m| m.account.0).as_deref(), Some("acc-nina"));
    // A refresh within the interval reads nothing; an older index is read again.
    let read = accounts::refresh_index(&store, a, &clock, TimeDelta::hours(6)).await;
    assert_eq!(read.expect("fresh"), 0);
    let read = accounts::refresh_index(&store, a, &clock, TimeDelta::zero()).await;
    assert_eq!(read.expect("read"), 4);
}

#[tokio::test]
async fn a_site_contradicting_a_stored_match_is_checked_against_the_organization() {
    let db = TestDatabase::create().await;
    let store = support::store(&db).await;
    let cloud = cloud_with(World::sample(), all_credentials).await;
    let (a, site, clock, org) = (&cloud.atlassian, &cloud.jira, SystemClock, org());
    let dan_id = PersonId("p-dan".into());
    let dan_email = Email::parse("dan.diaz@acme.io").expect("email");
    // A wrong match stored earlier; the site and the organization both say Dan is DAN.
    stored::remember(
        &store,
        "org-acme",
        &dan_id,
        &dan_email,
        &AccountId("acc-stale".into()),
        "email lookup",
        chrono::Utc::now(),
    )
    .await
    .expect("remember");
    let found = accounts::person_for_account(&store, a, site, &org, &AccountId(DAN.into()), &clock)
        .await
        .expect("lookup");
    assert_eq!(found, org.by_id(&dan_id));
    let matched = stored::match_for(&store, "org-acme", &dan_id)
        .await
        .expect("read")
        .expect("match");
    assert_eq!(
        (matched.account.0.as_str(), matched.found_by.as_str()),
        (DAN, "re-checked after a site disagreed")
    );
    // Now the site claims Ola's account is Dan's (its profile shows Dan's email); the
    // organization's index says otherwise: the stored match stays and Ola's account is nobody.
    {
        let mut world = cloud.fake.world();
        let ola = world
            .users
            .iter_mut()
            .find(|u| u.account_id == OLA)
            .expect("ola");
        ola.email = "dan.diaz@acme.io".into();
        ola.email_visible = true;
    }
    let found = accounts::person_for_account(&store, a, site, &org, &AccountId(OLA.into()), &clock)
        .await
        .expect("lookup");
    assert_eq!(found, None);
    let matched = stored::match_for(&store, "org-acme", &dan_id)
        .await
        .expect("read")
        .expect("match");
    assert_eq!(matched.account.0, DAN);
    // Another organization's matches are its own.
    let other = stored::match_for(&store, "org-other", &dan_id)
        .await
        .expect("read");
    assert_eq!(other, None);
}
