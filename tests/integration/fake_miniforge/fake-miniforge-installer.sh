#!/bin/bash
# FAKE Miniforge installer: a test stand-in for tests/integration/test_conda_user_env.py,
# because conda-forge and GitHub are out of reach from the test machines. It is not
# Miniforge and installs no conda. It takes the real installer's `-b -p PREFIX` (and
# `-u`), refuses an existing PREFIX without -u as the real one does, and makes PREFIX a
# venv of /usr/bin/python3 (so `PREFIX/bin/python -m pip install` really works) with
# fake bin/conda and bin/mamba. Every run of the installer, conda and mamba appends its
# argv to PREFIX/fake-conda-calls.log.
set -euo pipefail

batch=0 update=0 prefix=""
while getopts "bp:u" opt; do
    case "$opt" in
        b) batch=1 ;;
        p) prefix="$OPTARG" ;;
        u) update=1 ;;
        *) echo "fake-miniforge-installer: usage: $0 -b -p PREFIX [-u]" >&2; exit 2 ;;
    esac
done
if [ "$batch" != 1 ] || [ -z "$prefix" ]; then
    echo "fake-miniforge-installer: only batch mode is faked: $0 -b -p PREFIX [-u]" >&2
    exit 2
fi
# Same check and wording as the real (constructor-made) installer.
if [ "$update" = 0 ] && [ -e "$prefix" ]; then
    printf "ERROR: File or directory already exists: '%s'\n" "$prefix" >&2
    printf "If you want to update an existing installation, use the -u option.\n" >&2
    exit 1
fi

/usr/bin/python3 -m venv "$prefix"
echo "fake-miniforge-installer $*" >> "$prefix/fake-conda-calls.log"

cat > "$prefix/bin/conda" <<'CONDA'
#!/bin/bash
# Fake conda (test stand-in, see fake-miniforge-installer.sh): only logs its argv.
prefix="$(cd "$(dirname "$0")/.." && pwd)"
echo "conda $*" >> "$prefix/fake-conda-calls.log"
CONDA

cat > "$prefix/bin/mamba" <<'MAMBA'
#!/bin/bash
# Fake mamba (test stand-in, see fake-miniforge-installer.sh): logs its argv. `install`
# records the package specs in PREFIX/fake-conda-installed and prints what real mamba
# prints when there is, or is not, something to do; with --dry-run it records nothing.
# `remove` takes names out of that record. Its stand-in channel knows the names in
# FAKE_CHANNEL; any other name fails as real mamba fails on a package no channel has.
set -euo pipefail
FAKE_CHANNEL="numpy scipy pandas r-base r-irkernel"
prefix="$(cd "$(dirname "$0")/.." && pwd)"
echo "mamba $*" >> "$prefix/fake-conda-calls.log"
command="${1:-}"
[ "$command" = install ] || [ "$command" = remove ] || exit 0
shift
specs=() dry_run=0
while [ $# -gt 0 ]; do
    case "$1" in
        -p|--prefix|-c|--channel) shift 2 ;;
        --dry-run) dry_run=1; shift ;;
        -*) shift ;;
        *) specs+=("$1"); shift ;;
    esac
done
installed="$prefix/fake-conda-installed"
touch "$installed"
if [ "$command" = remove ]; then
    for spec in "${specs[@]}"; do
        grep -vxF -- "$spec" "$installed" > "$installed.new" || true
        mv "$installed.new" "$installed"
    done
    printf "\nTransaction finished\n"
    exit 0
fi
for spec in "${specs[@]}"; do
    name="${spec%%[=<>!~]*}"
    case " $FAKE_CHANNEL " in
        *" $name "*) ;;
        *) printf "error    libmamba Could not solve for environment specs\n" >&2
           printf "    The following package could not be installed\n    └─ %s does not exist (perhaps a typo or a missing channel).\n" "$spec" >&2
           exit 1 ;;
    esac
done
missing=()
for spec in "${specs[@]}"; do
    grep -qxF -- "$spec" "$installed" || missing+=("$spec")
done
printf "\nTransaction\n\n  Prefix: %s\n\n" "$prefix"
if [ ${#missing[@]} -eq 0 ]; then
    echo "  All requested packages already installed"
    exit 0
fi
for spec in "${missing[@]}"; do
    printf "  + %s (fake)\n" "$spec"
    [ "$dry_run" = 1 ] || echo "$spec" >> "$installed"
done
[ "$dry_run" = 1 ] && { printf "\nDry run. Not executing the transaction.\n"; exit 0; }
printf "\nTransaction starting\n\nTransaction finished\n"
MAMBA

chmod 0755 "$prefix/bin/conda" "$prefix/bin/mamba"
echo "installation finished."
