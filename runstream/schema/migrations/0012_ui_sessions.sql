-- Browser sessions of the query service (issue 14, "Secure by default").
--
-- /login opens one row per sign-in and the cookie names it; every request
-- that comes with the cookie checks the row, so /logout (revoked_at) ends the
-- session everywhere, even for a copy of the cookie, and an operator ends all
-- of them with: UPDATE ui_sessions SET revoked_at = now() WHERE revoked_at IS NULL;
-- id is the SHA-256 of the random session id the cookie carries (signed with
-- the service's cookie secret), so the table alone opens nothing.
CREATE TABLE ui_sessions (
    id          bytea PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX ui_sessions_expires ON ui_sessions (expires_at);
