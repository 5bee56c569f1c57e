#!/usr/bin/env bash
# Build the images of the container stack from Debian bookworm packages, for sites (and this
# project's CI) that reach a Debian mirror but no container image registry:
#   caracal-offline/base:bookworm         python3 3.11 + venv + tini; BASE_IMAGE of the runtime
#   caracal-offline/postgres:15-bookworm  PostgreSQL 15, environment as the official postgres image
#   caracal-offline/redis:7-bookworm      Redis 7.0, command overridable as the official redis image
# Each root file system is made by mmdebstrap and streamed as a tarball into `docker import`.
#
# Usage: sudo containers/offline/build-images.sh [--force] [base] [postgres] [redis]
# Environment: CARACAL_DEBIAN_MIRROR, CARACAL_DEBIAN_SECURITY_MIRROR (a local mirror, say).

# mmdebstrap hooks are shell snippets that get the root file system as "$1": single quotes.
# shellcheck disable=SC2016
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly HERE
readonly SUITE=bookworm
readonly LABEL=org.caracal.offline=1
readonly DEBIAN_MIRROR=${CARACAL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
readonly SECURITY_MIRROR=${CARACAL_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
readonly BASE_TAG=caracal-offline/base:bookworm
readonly POSTGRES_TAG=caracal-offline/postgres:15-bookworm
readonly REDIS_TAG=caracal-offline/redis:7-bookworm
readonly DEFAULT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# The official postgres and redis images run their servers as uid/gid 999; so do these, which
# keeps data volumes interchangeable between the two kinds of image.
readonly SERVICE_ID=999

usage() {
	sed -n '2,10s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

force=0
wanted=()
for arg in "$@"; do
	case $arg in
	--force) force=1 ;;
	-h | --help) usage && exit 0 ;;
	base | postgres | redis) wanted+=("$arg") ;;
	*) printf 'build-images: unknown argument "%s"; see --help.\n' "$arg" >&2 && exit 2 ;;
	esac
done
((${#wanted[@]})) || wanted=(base postgres redis)

if ((EUID != 0)); then
	echo "build-images: mmdebstrap needs root here; run it with sudo." >&2
	exit 1
fi
for tool in mmdebstrap docker; do
	command -v "$tool" >/dev/null || {
		echo "build-images: $tool is not installed; install it (apt-get install $tool) and run again." >&2
		exit 1
	}
done
docker info >/dev/null 2>&1 || {
	echo "build-images: the Docker engine does not answer; start it and run again." >&2
	exit 1
}

# Shared by every image: minbase with merged /usr, no Recommends (mmdebstrap's default),
# docs/man/translations left out (copyright files kept), apt lists and caches removed by
# mmdebstrap's cleanup.
MMDEBSTRAP_COMMON=(
	--mode=root --variant=minbase --format=tar
	# merged /usr the way debootstrap does it; otherwise apt satisfies "usrmerge | usr-is-merged"
	# with usrmerge, which drags in the whole of perl (about 50 MB).
	--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
	--dpkgopt='path-exclude=/usr/share/doc/*'
	--dpkgopt='path-include=/usr/share/doc/*/copyright'
	--dpkgopt='path-exclude=/usr/share/man/*'
	--dpkgopt='path-exclude=/usr/share/info/*'
	--dpkgopt='path-exclude=/usr/share/locale/*'
	--dpkgopt='path-include=/usr/share/locale/locale.alias'
	--dpkgopt='path-exclude=/usr/share/lintian/*'
)
SOURCES=(
	"deb $DEBIAN_MIRROR $SUITE main"
	"deb $DEBIAN_MIRROR $SUITE-updates main"
	"deb $SECURITY_MIRROR $SUITE-security main"
)

# An essential-hook that creates a system user and group before the packages whose maintainer
# scripts would otherwise pick the next free system id (as the official images do with useradd;
# `passwd` is not installed yet at that stage, so the entries are written directly).
system_account_hook() {
	local name=$1 home=$2 gecos=$3 shell=$4
	printf '%s' "
		printf '%s:x:$SERVICE_ID:\n' $name >>\"\$1/etc/group\"
		printf '%s:x:$SERVICE_ID:$SERVICE_ID:%s:%s:%s\n' $name '$gecos' $home $shell >>\"\$1/etc/passwd\"
		if [ -e \"\$1/etc/shadow\" ]; then printf '%s:*:19000:0:99999:7:::\n' $name >>\"\$1/etc/shadow\"; fi
		if [ -e \"\$1/etc/gshadow\" ]; then printf '%s:!::\n' $name >>\"\$1/etc/gshadow\"; fi"
}

# At a terminal, a phase line per step on stderr (which image of how many, what it is doing,
# time so far) and a line every 15 s while mmdebstrap works; without one (CI, a log file) the
# output is exactly what it always was.
SHOW_PHASES=0
[[ -t 2 ]] && SHOW_PHASES=1
readonly SHOW_PHASES
readonly TOTAL=${#wanted[@]}
image_number=0
TICKER=

phase() {
	((SHOW_PHASES)) || return 0
	printf 'build-images: [%d/%d] %s: %s (%ss so far)\n' "$image_number" "$TOTAL" "$1" "$2" "$SECONDS" >&2
}

start_ticker() {
	((SHOW_PHASES)) || return 0
	local tag=$1 started=$SECONDS
	(
		# Stopped with TERM: the pending sleep goes too, so nothing outlives the build.
		nap=
		trap 'kill ${nap:-} 2>/dev/null; exit 0' TERM
		while :; do
			sleep 15 &
			nap=$!
			wait "$nap"
			printf 'build-images: [%d/%d] %s: still building, %ss for this image\n' \
				"$image_number" "$TOTAL" "$tag" $((SECONDS - started)) >&2
		done
	) &
	TICKER=$!
}

stop_ticker() {
	[[ -n $TICKER ]] || return 0
	kill "$TICKER" 2>/dev/null || true
	wait "$TICKER" 2>/dev/null || true
	TICKER=
}

declare -A BUILD_SECONDS=()
declare -A SKIPPED=()
declare -a BUILT_ORDER=()

# build_image TAG "mmdebstrap options..." -- "docker import --change options..."
# Imports under a temporary tag first, so a failed or interrupted build never leaves a
# half-made image under the real tag.
build_image() {
	local tag=$1
	shift
	local -a mm_opts=() changes=()
	while (($#)) && [[ $1 != -- ]]; do mm_opts+=("$1") && shift; done
	shift
	while (($#)); do changes+=(--change "$1") && shift; done

	BUILT_ORDER+=("$tag")
	image_number=$((image_number + 1))
	if ((!force)) && docker image inspect "$tag" >/dev/null 2>&1; then
		echo "build-images: $tag exists; keeping it (use --force to rebuild)."
		phase "$tag" "kept"
		SKIPPED[$tag]=1
		return
	fi
	local staging="${tag%%:*}:staging" previous
	previous=$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)
	local started=$SECONDS
	echo "build-images: building $tag"
	trap 'stop_ticker; docker rmi "'"$staging"'" >/dev/null 2>&1 || true' EXIT
	phase "$tag" "root file system from Debian packages (mmdebstrap), into docker import"
	start_ticker "$tag"
	mmdebstrap "${MMDEBSTRAP_COMMON[@]}" "${mm_opts[@]}" "$SUITE" - "${SOURCES[@]}" |
		docker import --change "LABEL $LABEL" --change "ENV PATH=$DEFAULT_PATH" "${changes[@]}" \
			--message "built by containers/offline/build-images.sh from Debian $SUITE" - "$staging" >/dev/null
	stop_ticker
	phase "$tag" "tagging"
	# One image, no parent: `docker import --change` cannot set STOPSIGNAL, so the stack file
	# sets postgres's stop_signal instead of a second build on top of this one.
	docker tag "$staging" "$tag"
	docker rmi "$staging" >/dev/null
	trap - EXIT
	# A rebuilt image replaces the old one, unless a container still uses it.
	if [[ -n $previous && $previous != "$(docker image inspect -f '{{.Id}}' "$tag")" ]]; then
		docker rmi "$previous" >/dev/null 2>&1 || true
	fi
	BUILD_SECONDS[$tag]=$((SECONDS - started))
	phase "$tag" "built in ${BUILD_SECONDS[$tag]}s"
}

for name in "${wanted[@]}"; do
	case $name in
	base)
		build_image "$BASE_TAG" \
			--include=python3,python3-venv,ca-certificates,tini \
			-- \
			'ENV LANG=C.UTF-8' \
			'ENTRYPOINT ["/usr/bin/tini", "--"]' \
			'CMD ["python3"]'
		;;
	postgres)
		# Debian's postinst creates a "main" cluster and a snakeoil TLS key, neither of which
		# belongs in an image. The socket directory must survive mmdebstrap's cleanup of /run
		# (the server, not root, runs here, so it cannot create it at start).
		build_image "$POSTGRES_TAG" \
			--include=postgresql-15 \
			--essential-hook="$(system_account_hook postgres /var/lib/postgresql 'PostgreSQL administrator' /bin/bash)" \
			--customize-hook='copy-in '"$HERE"'/postgres-entrypoint.sh /usr/local/bin' \
			--customize-hook='chmod 0755 "$1/usr/local/bin/postgres-entrypoint.sh"' \
			--customize-hook='if [ -d "$1/etc/postgresql/15/main" ]; then chroot "$1" pg_dropcluster 15 main; fi' \
			--customize-hook='rm -f "$1/etc/ssl/private/ssl-cert-snakeoil.key" "$1/etc/ssl/certs/ssl-cert-snakeoil.pem"' \
			--customize-hook='chroot "$1" install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data' \
			--skip=cleanup/run \
			--customize-hook='find "$1/run" -mindepth 1 -maxdepth 1 ! -name lock -exec rm -rf {} +' \
			--customize-hook='chroot "$1" install -d -o postgres -g postgres -m 2775 /run/postgresql' \
			--customize-hook='mkdir -p "$1/docker-entrypoint-initdb.d"' \
			-- \
			"ENV PATH=/usr/lib/postgresql/15/bin:$DEFAULT_PATH" \
			'ENV LANG=C.UTF-8' \
			'ENV PGDATA=/var/lib/postgresql/data' \
			"USER $SERVICE_ID:$SERVICE_ID" \
			'EXPOSE 5432' \
			'ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]' \
			'CMD ["postgres"]'
		;;
	redis)
		build_image "$REDIS_TAG" \
			--include=redis-server,redis-tools \
			--essential-hook="$(system_account_hook redis /var/lib/redis 'redis' /usr/sbin/nologin)" \
			--customize-hook='chroot "$1" install -d -o redis -g redis -m 0750 /data' \
			-- \
			'ENV LANG=C.UTF-8' \
			"USER $SERVICE_ID:$SERVICE_ID" \
			'WORKDIR /data' \
			'EXPOSE 6379' \
			'CMD ["redis-server", "--protected-mode", "no", "--bind", "*", "-::*"]'
		;;
	esac
done

echo
printf '%-44s %-10s %s\n' IMAGE "BUILD(s)" SIZE
for tag in "${BUILT_ORDER[@]}"; do
	size=$(docker image inspect -f '{{.Size}}' "$tag")
	if [[ -n ${SKIPPED[$tag]:-} ]]; then took=kept; else took=${BUILD_SECONDS[$tag]}; fi
	printf '%-44s %-10s %s (%s bytes)\n' "$tag" "$took" "$(numfmt --to=iec-i --suffix=B "$size")" "$size"
done
echo
echo "export CARACAL_BASE_IMAGE=$BASE_TAG CARACAL_POSTGRES_IMAGE=$POSTGRES_TAG CARACAL_REDIS_IMAGE=$REDIS_TAG"
