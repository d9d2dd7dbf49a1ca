"""Scimgraph: SCIM 2.0 provisioning and a GraphQL admin API over one data layer."""
