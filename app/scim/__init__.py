"""The SCIM 2.0 transport (RFC 7643 / RFC 7644)."""
