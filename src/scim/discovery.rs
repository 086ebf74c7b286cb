//! What the service provider says of itself (RFC 7643 §5–§7): its configuration, its resource
//! types, and the schemas of the attributes it keeps. The schemas are built from one table per
//! resource so what is published and what the filters and PATCH accept stay one list.

use serde_json::{Value, json};

use super::resource::{ENTERPRISE_SCHEMA, GROUP_SCHEMA, Kind, USER_SCHEMA};

/// The most resources one list returns, whatever `count` asks for.
pub const MAX_RESULTS: usize = 1_000;
/// A list's page when `count` is not given.
pub const DEFAULT_COUNT: usize = 100;

pub fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://github.com/tollgate/tollgate/blob/main/docs/identity.md",
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "A token issued by `tollgate scim-push token issue`",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig"),
        },
    })
}

pub fn resource_types(base: &str) -> Vec<Value> {
    [Kind::User, Kind::Group]
        .into_iter()
        .map(|kind| resource_type(base, kind))
        .collect()
}

pub fn resource_type(base: &str, kind: Kind) -> Value {
    let mut rt = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": kind.name(),
        "name": kind.name(),
        "endpoint": format!("/{}", kind.endpoint()),
        "description": kind.name(),
        "schema": kind.schema(),
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{}", kind.name())},
    });
    if kind == Kind::User {
        rt["schemaExtensions"] = json!([{"schema": ENTERPRISE_SCHEMA, "required": false}]);
    }
    rt
}

/// One attribute: name, type, and how it behaves.
struct Attr {
    name: &'static str,
    kind: &'static str,
    multi: bool,
    required: bool,
    case_exact: bool,
    mutability: &'static str,
    returned: &'static str,
    uniqueness: &'static str,
    subs: &'static [Attr],
    references: &'static [&'static str],
}

const fn attr(name: &'static str, kind: &'static str) -> Attr {
    Attr {
        name,
        kind,
        multi: false,
        required: false,
        case_exact: false,
        mutability: "readWrite",
        returned: "default",
        uniqueness: "none",
        subs: &[],
        references: &[],
    }
}

const fn complex(name: &'static str, multi: bool, subs: &'static [Attr]) -> Attr {
    Attr {
        multi,
        subs,
        ..attr(name, "complex")
    }
}

const fn reference(name: &'static str, to: &'static [&'static str]) -> Attr {
    Attr {
        references: to,
        ..attr(name, "reference")
    }
}

/// The sub-attributes of emails, phone numbers and the like.
const MULTI: &[Attr] = &[
    attr("value", "string"),
    attr("display", "string"),
    attr("type", "string"),
    attr("primary", "boolean"),
];

const NAME: &[Attr] = &[
    attr("formatted", "string"),
    attr("familyName", "string"),
    attr("givenName", "string"),
    attr("middleName", "string"),
    attr("honorificPrefix", "string"),
    attr("honorificSuffix", "string"),
];

const ADDRESS: &[Attr] = &[
    attr("formatted", "string"),
    attr("streetAddress", "string"),
    attr("locality", "string"),
    attr("region", "string"),
    attr("postalCode", "string"),
    attr("country", "string"),
    attr("type", "string"),
    attr("primary", "boolean"),
];

const USER_GROUPS: &[Attr] = &[
    Attr {
        mutability: "readOnly",
        ..attr("value", "string")
    },
    Attr {
        mutability: "readOnly",
        ..reference("$ref", &["Group"])
    },
    Attr {
        mutability: "readOnly",
        ..attr("display", "string")
    },
    Attr {
        mutability: "readOnly",
        ..attr("type", "string")
    },
];

const USER: &[Attr] = &[
    Attr {
        required: true,
        uniqueness: "server",
        ..attr("userName", "string")
    },
    Attr {
        case_exact: true,
        ..attr("externalId", "string")
    },
    complex("name", false, NAME),
    attr("displayName", "string"),
    attr("nickName", "string"),
    reference("profileUrl", &["external"]),
    attr("title", "string"),
    attr("userType", "string"),
    attr("preferredLanguage", "string"),
    attr("locale", "string"),
    attr("timezone", "string"),
    attr("active", "boolean"),
    Attr {
        mutability: "writeOnly",
        returned: "never",
        ..attr("password", "string")
    },
    complex("emails", true, MULTI),
    complex("phoneNumbers", true, MULTI),
    complex("ims", true, MULTI),
    complex("addresses", true, ADDRESS),
    Attr {
        mutability: "readOnly",
        ..complex("groups", true, USER_GROUPS)
    },
    complex("roles", true, MULTI),
    complex("entitlements", true, MULTI),
];

const MANAGER: &[Attr] = &[
    attr("value", "string"),
    reference("$ref", &["User"]),
    Attr {
        mutability: "readOnly",
        ..attr("displayName", "string")
    },
];

const ENTERPRISE: &[Attr] = &[
    attr("employeeNumber", "string"),
    attr("costCenter", "string"),
    attr("organization", "string"),
    attr("division", "string"),
    attr("department", "string"),
    complex("manager", false, MANAGER),
];

const MEMBERS: &[Attr] = &[
    Attr {
        mutability: "immutable",
        case_exact: true,
        ..attr("value", "string")
    },
    Attr {
        mutability: "immutable",
        ..reference("$ref", &["User", "Group"])
    },
    attr("display", "string"),
    Attr {
        mutability: "immutable",
        ..attr("type", "string")
    },
];

const GROUP: &[Attr] = &[
    Attr {
        required: true,
        ..attr("displayName", "string")
    },
    Attr {
        case_exact: true,
        ..attr("externalId", "string")
    },
    complex("members", true, MEMBERS),
];

fn describe(a: &Attr) -> Value {
    let mut v = json!({
        "name": a.name,
        "type": a.kind,
        "multiValued": a.multi,
        "description": a.name,
        "required": a.required,
        "caseExact": a.case_exact,
        "mutability": a.mutability,
        "returned": a.returned,
        "uniqueness": a.uniqueness,
    });
    if !a.subs.is_empty() {
        v["subAttributes"] = Value::Array(a.subs.iter().map(describe).collect());
    }
    if !a.references.is_empty() {
        v["referenceTypes"] = json!(a.references);
    }
    v
}

pub fn schemas(base: &str) -> Vec<Value> {
    [
        (USER_SCHEMA, "User", USER),
        (ENTERPRISE_SCHEMA, "EnterpriseUser", ENTERPRISE),
        (GROUP_SCHEMA, "Group", GROUP),
    ]
    .into_iter()
    .map(|(id, name, attrs)| {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": id,
            "name": name,
            "description": name,
            "attributes": attrs.iter().map(describe).collect::<Vec<_>>(),
            "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{id}")},
        })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schemas_name_what_the_idps_map() {
        let schemas = schemas("https://t.example/scim/v2");
        let names = |i: usize| -> Vec<String> {
            schemas[i]["attributes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a["name"].as_str().map(str::to_string))
                .collect()
        };
        assert!(names(0).contains(&"userName".to_string()));
        assert!(names(1).contains(&"manager".to_string()));
        assert!(names(2).contains(&"members".to_string()));
        assert_eq!(schemas[0]["attributes"][0]["uniqueness"], "server");
    }
}
