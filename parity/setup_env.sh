#!/usr/bin/env bash
# Create the parity harness's scratch environment (outside the repository) and check the tools' source trees.
#
#   parity/setup_env.sh [--venv DIR] [--sources DIR] [--comfyui PATH] [--a1111 PATH] [--k-diffusion PATH]
#
# --venv     the scratch virtual environment to create or reuse (default /work/parity-venv)
# --sources  where the three source trees live (default /work/parity-src/{comfyui,a1111,k-diffusion})
# --comfyui / --a1111 / --k-diffusion  an existing tree (a checkout or a plain copy) to use instead of exporting
#            one from the local mirrors (bare git dirs under $MIRRORS, default /work/.mirror): it is copied to
#            --sources and checked all the same.
# Each tree is checked file by file against the pinned commit: the git tree id of every folder and file the harness
# imports must equal the commit's (ComfyUI's comfy/ may lack comfy/text_encoders/llama_tokenizer/tokenizer.json,
# a blob the mirror does not hold and the harness never reads). Writes $SOURCES/SOURCES.json (render.py copies it
# into the manifest). Never touches labkit's own venv.
set -euo pipefail

VENV=/work/parity-venv
SOURCES=/work/parity-src
MIRRORS=${MIRRORS:-/work/.mirror}
declare -A GIVEN=()
while [ $# -gt 0 ]; do
  case "$1" in
    --venv) VENV=$2; shift 2 ;;
    --sources) SOURCES=$2; shift 2 ;;
    --comfyui|--a1111|--k-diffusion) GIVEN[${1#--}]=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

# ---- pins -------------------------------------------------------------------------------------------------------
declare -A COMMIT=(
  [comfyui]=3cd7b32f1b7e7e90395cefe7d9f9b1f89276d8ce      # ComfyUI v0.8.0 line, 2026-01-07 ("Support gemma 12B ...")
  [a1111]=82a973c04367123ae98bd9abdf80d9eda9b910e2        # stable-diffusion-webui tag v1.10.1, 2024-07-27
  [k-diffusion]=ab527a9a6d347f364e3d185ba6d714e22d80cb3c  # k-diffusion v0.0.16, the commit A1111 pins
)
declare -A MIRROR=(
  [comfyui]=pollockjj+ComfyUI                # fork; its HEAD 618b803 has the same root tree as upstream 3cd7b32
  [a1111]=kklouzal+stable-diffusion-webui    # fork; holds upstream's v1.10.1 tag commit itself
  [k-diffusion]=crowsonkb+k-diffusion        # upstream
)
# path inside the tree = git object id at the pinned commit ("|" separates an accepted alternative)
declare -A TREES=(
  [comfyui]="comfy=70354013d234c5d678ddf5e3fb06c05acf356485|66f740598ceadbfaeb5e9cb03076039e7597bc21
comfy_api=cf259d63c73dbcf2bc344570385cf9b657682039
comfy_execution=85ee92fb00024ed63f4a473f156e72502f40b1a0
comfy_config=0ef856f430484cfd2fb39a472d067426fc607341
utils=b9255671f816fe8bbcf4ed93ecea274e413bf369
app=e6e1dc1e2e77d8d3b2c964880faadf950f616f7c
nodes.py=56b74ebe31303dd420542d8096abf7e1c1226bfb
folder_paths.py=9c96540e3dd90626e9a6d4c1e3e00b80fffb2df8
latent_preview.py=d52e3f7a1fd03a343161ba4d62580a357b486ade
node_helpers.py=4ff960ef8afeadd935b6e48a9a683b7ef6970b2f
comfyui_version.py=750673f08208b7270810ac106c0161f0b8f3d970
protocol.py=038a0a840d4efba202b54eabeeacc01f0eba0ed3"
  [a1111]="modules=9b9fda43b976a80b3c253bd0c3855dc855f8743b"
  [k-diffusion]="k_diffusion=fe9f460771593a96ed59eb7a1bb1243976f1fdf0"
)
# the scratch venv: same versions as labkit's venv where both have a package
PACKAGES=(torch==2.13.0 numpy==2.4.6 scipy==1.17.1 torchsde==0.2.6 torchdiffeq==0.2.5 einops==0.8.2 psutil==7.2.2
          safetensors==0.8.0 tqdm==4.70.1 Pillow==13.0.0 typing_extensions==4.16.0 diffusers==0.42.1
          lark==1.3.1              # A1111's prompt_parser (its cond batch classes)
          transformers==5.25.0 sentencepiece==0.2.3 pyyaml==6.0.4 av==18.1.0 pydantic==2.14.4)  # imported by ComfyUI's nodes.py / comfy.sd

# ---- source trees -----------------------------------------------------------------------------------------------
EXCLUDES=$(mktemp)
trap 'rm -f "$EXCLUDES"' EXIT
printf '__pycache__/\n*.pyc\n' > "$EXCLUDES"

object_id() {  # object_id DIR PATH: the git id DIR/PATH would have at a commit (tree for a folder, blob for a file)
  local dir=$1 path=$2 tmp id
  if [ -f "$dir/$path" ]; then git hash-object "$dir/$path"; return; fi
  [ -d "$dir/$path" ] || { echo missing; return; }
  tmp=$(mktemp -d)
  git init -q --bare "$tmp/g"
  GIT_DIR=$tmp/g GIT_WORK_TREE=$dir GIT_INDEX_FILE=$tmp/index \
    git -c core.excludesFile="$EXCLUDES" -c core.autocrlf=false add -A -- "$path"
  id=$(GIT_DIR=$tmp/g GIT_INDEX_FILE=$tmp/index git write-tree --prefix="$path/")
  rm -rf "$tmp"
  echo "$id"
}

export_from_mirror() {  # export_from_mirror TOOL DEST: git archive of the pinned commit, less blobs the mirror lacks
  local tool=$1 dest=$2 git=$MIRRORS/${MIRROR[$1]}/repo missing excl=()
  [ -d "$git" ] || { echo "no mirror at $git: pass --$tool PATH" >&2; exit 1; }
  missing=$(git --git-dir="$git" ls-tree -r "${COMMIT[$tool]}" | awk '$2 == "blob" {print $3" "$4}' \
            | git --git-dir="$git" cat-file --batch-check='%(objectname) %(objecttype) %(rest)' | awk '$2 == "missing" {print $1}' || true)
  for blob in $missing; do
    excl+=(":(exclude)$(git --git-dir="$git" ls-tree -r "${COMMIT[$tool]}" | awk -v b="$blob" '$3 == b {print $4}')")
  done
  rm -rf "$dest"; mkdir -p "$dest"
  # git may still report the left-out blob as unreadable; the tree check below is what counts
  git --git-dir="$git" archive "${COMMIT[$tool]}" -- . "${excl[@]}" 2>/dev/null | tar -x -C "$dest"
  EXCLUDED[$tool]=$(printf '%s\n' "${excl[@]#:(exclude)}" | paste -sd, -)
}

declare -A EXCLUDED=() ORIGIN=()
mkdir -p "$SOURCES"
for tool in comfyui a1111 k-diffusion; do
  dest=$SOURCES/$tool
  if [ -n "${GIVEN[$tool]:-}" ]; then
    src=$(cd "${GIVEN[$tool]}" && pwd)
    if [ "$src" != "$(mkdir -p "$dest" && cd "$dest" && pwd)" ]; then
      rm -rf "$dest"; mkdir -p "$dest"; (cd "$src" && tar -c --exclude=.git .) | tar -x -C "$dest"
    fi
    ORIGIN[$tool]="given: $src"
  else
    export_from_mirror "$tool" "$dest"
    ORIGIN[$tool]="git archive of ${COMMIT[$tool]} from $MIRRORS/${MIRROR[$tool]}"
  fi
  while IFS= read -r line; do
    path=${line%%=*}; want=${line#*=}; got=$(object_id "$dest" "$path")
    if [[ "|$want|" != *"|$got|"* ]]; then
      echo "$tool: $path is $got, not ${COMMIT[$tool]}'s $want" >&2; exit 1
    fi
  done <<< "${TREES[$tool]}"
  echo "$tool: ${COMMIT[$tool]} verified ($(echo "${TREES[$tool]}" | cut -d= -f1 | paste -sd' '))"
done

python3 - "$SOURCES/SOURCES.json" <<EOF
import json, sys
tools = {}
for tool, commit, origin, excluded, trees in [
    ("comfyui", "${COMMIT[comfyui]}", "${ORIGIN[comfyui]}", "${EXCLUDED[comfyui]:-}", """${TREES[comfyui]}"""),
    ("a1111", "${COMMIT[a1111]}", "${ORIGIN[a1111]}", "${EXCLUDED[a1111]:-}", """${TREES[a1111]}"""),
    ("k-diffusion", "${COMMIT[k-diffusion]}", "${ORIGIN[k-diffusion]}", "${EXCLUDED[k-diffusion]:-}",
     """${TREES[k-diffusion]}""")]:
    tools[tool] = {"commit": commit, "origin": origin, "left_out": [e for e in excluded.split(",") if e],
                   "verified": dict(line.split("=", 1) for line in trees.splitlines())}
tools["comfyui"]["version"] = "0.8.0 (comfyui_version.py)"
tools["a1111"]["version"] = "v1.10.1"
tools["k-diffusion"]["version"] = "0.0.16"
json.dump(tools, open(sys.argv[1], "w"), indent=1)
EOF

# ---- the scratch venv -------------------------------------------------------------------------------------------
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q "${PACKAGES[@]}"
"$VENV/bin/python" -c "import torch, diffusers, torchsde, scipy; print('venv', '$VENV', 'torch', torch.__version__, 'diffusers', diffusers.__version__)"
echo "sources in $SOURCES (SOURCES.json), venv in $VENV"
