#!/usr/bin/env bash
# Entry point of caracal-offline/postgres: the subset of the official postgres image's
# docker-entrypoint.sh that the stack relies on, for an image built from Debian packages.
# Runs as the postgres user; root is never needed because the image ships PGDATA and the socket
# directory owned by postgres (a new named volume mounted on PGDATA inherits that ownership).
#
# Honoured: POSTGRES_USER (default postgres), POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE,
# POSTGRES_DB (default: the user), PGDATA (default /var/lib/postgresql/data),
# POSTGRES_HOST_AUTH_METHOD (default scram-sha-256), POSTGRES_INITDB_ARGS, and *.sh / *.sql
# files in /docker-entrypoint-initdb.d run once after the first initdb.
set -Eeuo pipefail

die() {
	printf 'postgres-entrypoint: %s\n' "$*" >&2
	exit 1
}

# file_env VAR [DEFAULT]: VAR comes from $VAR or from the file named by $VAR_FILE, never both.
file_env() {
	local var=$1 file_var="${1}_FILE" default=${2:-}
	if [[ -n ${!var:-} && -n ${!file_var:-} ]]; then
		die "both $var and $file_var are set; set only one of them."
	fi
	local value=$default
	if [[ -n ${!var:-} ]]; then
		value=${!var}
	elif [[ -n ${!file_var:-} ]]; then
		[[ -e ${!file_var} ]] || die "$file_var names ${!file_var}, which does not exist; mount the secret there."
		[[ -r ${!file_var} ]] || die "$file_var names ${!file_var}, which $(id -un) (uid $(id -u)) cannot read; make it readable by that uid."
		value=$(<"${!file_var}")
	fi
	export "$var"="$value"
	unset "$file_var"
}

# Options first (docker run IMAGE -c foo=bar) mean "postgres with these options", as upstream.
if [[ ${1:-} == -* ]]; then
	set -- postgres "$@"
fi

# Anything else (psql, bash, pg_dump ...) runs as given, without touching PGDATA.
if [[ ${1:-} != postgres ]] || [[ " $* " == *" --help "* || " $* " == *" --version "* || " $* " == *" -V "* ]]; then
	exec "$@"
fi

export PGDATA=${PGDATA:-/var/lib/postgresql/data}
file_env POSTGRES_USER postgres
file_env POSTGRES_PASSWORD
file_env POSTGRES_DB "$POSTGRES_USER"
file_env POSTGRES_INITDB_ARGS
POSTGRES_HOST_AUTH_METHOD=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}

if [[ ! -d $PGDATA ]]; then
	mkdir -p "$PGDATA" 2>/dev/null ||
		die "cannot create PGDATA=$PGDATA as $(id -un) (uid $(id -u)); mount a named volume there or create it owned by uid $(id -u)."
fi
if [[ ! -O $PGDATA ]]; then
	die "PGDATA=$PGDATA belongs to uid $(stat -c %u "$PGDATA"), but this image runs as $(id -un) (uid $(id -u)); use a new named volume or chown the directory to $(id -u):$(id -g)."
fi
chmod 0700 "$PGDATA"

if [[ ! -s $PGDATA/PG_VERSION ]]; then
	if [[ -z $POSTGRES_PASSWORD && $POSTGRES_HOST_AUTH_METHOD != trust ]]; then
		die "no password for the superuser \"$POSTGRES_USER\": set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE (or POSTGRES_HOST_AUTH_METHOD=trust to allow every connection without one, which is unsafe)."
	fi
	if [[ $POSTGRES_HOST_AUTH_METHOD == trust ]]; then
		printf 'postgres-entrypoint: WARNING: POSTGRES_HOST_AUTH_METHOD=trust lets anyone who reaches port 5432 connect as any user without a password.\n' >&2
	fi

	# The superuser gets its password at initdb. Socket connections stay trusted (as upstream) so
	# that psql and the init scripts work inside the container; TCP needs the password, loopback
	# included (upstream trusts 127.0.0.1).
	# shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of options, split on purpose
	initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
		--auth-local=trust --auth-host="$POSTGRES_HOST_AUTH_METHOD" $POSTGRES_INITDB_ARGS
	printf '\nlisten_addresses = '"'*'"'\n' >>"$PGDATA/postgresql.conf"
	printf 'host all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"

	# A temporary server on a private socket only: nothing outside can connect, and pg_isready
	# (health checks) does not report ready, before setup ends.
	setup_socket=$(mktemp -d)
	pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=$setup_socket" -w start >/dev/null
	psql_setup=(psql -v ON_ERROR_STOP=1 --no-password --no-psqlrc --host="$setup_socket"
		--username="$POSTGRES_USER" --dbname=postgres)
	if [[ $POSTGRES_DB != postgres ]]; then
		"${psql_setup[@]}" -v db="$POSTGRES_DB" <<-'SQL' >/dev/null
			CREATE DATABASE :"db";
		SQL
	fi
	shopt -s nullglob
	for script in /docker-entrypoint-initdb.d/*; do
		# shellcheck source=/dev/null
		case $script in
		*.sh) printf 'postgres-entrypoint: running %s\n' "$script" && . "$script" ;;
		*.sql) printf 'postgres-entrypoint: running %s\n' "$script" && "${psql_setup[@]}" --dbname="$POSTGRES_DB" -f "$script" ;;
		*) printf 'postgres-entrypoint: ignoring %s\n' "$script" ;;
		esac
	done
	shopt -u nullglob
	pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
	rmdir "$setup_socket"
	printf 'postgres-entrypoint: database cluster initialised in %s; database "%s" owned by "%s".\n' \
		"$PGDATA" "$POSTGRES_DB" "$POSTGRES_USER"
fi

# The password lives on in the cluster, not in the server's environment.
unset POSTGRES_PASSWORD
exec "$@"
