# ds01: GPUs are for containers. When the admin sets `gpu.deter_host_use: true`, ds01d names in
# <run_dir>/deter-host-gpu who may use GPUs outside containers (the admins); every other login gets
# CUDA_VISIBLE_DEVICES="" so a stray job on the host cannot take a GPU that ds01 hands to someone else.
_ds01_f="${DS01_RUN_DIR:-/run/ds01}/deter-host-gpu"
if [ -r "$_ds01_f" ]; then
  _ds01_me=$(id -un 2>/dev/null)
  _ds01_gs=" $(id -Gn 2>/dev/null) "
  _ds01_ok=
  while read -r _ds01_k _ds01_v; do
    for _ds01_n in $_ds01_v; do
      case "$_ds01_k" in
        users) [ "$_ds01_n" = "$_ds01_me" ] && _ds01_ok=1 ;;
        groups) case "$_ds01_gs" in *" $_ds01_n "*) _ds01_ok=1 ;; esac ;;
      esac
    done
  done < "$_ds01_f"
  if [ -z "$_ds01_ok" ]; then
    export CUDA_VISIBLE_DEVICES=""
    case $- in
      *i*) printf '%s\n' "ds01: GPUs here are for containers (container-deploy NAME --gpus 1); CUDA_VISIBLE_DEVICES is empty in this shell." ;;
    esac
  fi
  unset _ds01_me _ds01_gs _ds01_ok _ds01_k _ds01_v _ds01_n
fi
unset _ds01_f
