"""Commands for operators that drive a running server from outside, as a client would."""
