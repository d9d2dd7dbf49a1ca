"""Business rules. The only place they live: SCIM, GraphQL and the CLI all call these functions.

Services never import Starlette or Strawberry; they take an `AsyncSession` and a `Caller`.
"""
