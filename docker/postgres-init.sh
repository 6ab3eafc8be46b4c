#!/bin/sh
# Run once by the postgres image on an empty volume, as its superuser: the role
# runstream's services use owns its database and is not a superuser (it cannot
# run programs on the server with COPY ... FROM PROGRAM, read its files or make roles).
# The password goes through a psql variable, quoted by psql (:'password').
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
     -v password="$RUNSTREAM_PG_PASSWORD" <<'SQL'
CREATE ROLE runstream LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD :'password';
CREATE DATABASE runstream OWNER runstream;
SQL
