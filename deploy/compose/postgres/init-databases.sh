#!/bin/bash
# Run once by the postgres image on an empty data directory (/docker-entrypoint-initdb.d).
# One role and one database per service, each owned by its role: a service can reach its own
# store only (CONTRACT: services never read another's store), and PUBLIC may connect to none.
# Passwords come from the environment (<SERVICE>_DB_PASSWORD, see .env.example); psql quotes
# them (%L / %I), so no value can inject SQL.
set -euo pipefail

for service in intake casework forensics icac reporting; do
  variable="${service^^}_DB_PASSWORD"
  password="${!variable:?$variable is not set}"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
       -v service="$service" -v password="$password" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'service', :'password')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'service') \gexec
SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L TEMPLATE template0', :'service', :'service', 'UTF8')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'service') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'service') \gexec
SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', :'service', :'service') \gexec
SQL
done
