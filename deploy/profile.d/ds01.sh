# ds01: the login greeting. Shows your GPU use against your quota, your containers with their idle and
# runtime countdowns, recent alerts, and the admin's announcement (/etc/ds01/announcement).
# ds01d keeps each user's text current in <run_dir>/users/<uid>/greeting (readable by that user only);
# this file only prints it, without starting any program. DS01_NO_GREETING=1 in ~/.profile turns it off.
case $- in
  *i*)
    if [ -z "${DS01_NO_GREETING-}" ]; then
      _ds01_f="${DS01_RUN_DIR:-/run/ds01}/users/${UID:-$(id -u)}/greeting"
      if [ -s "$_ds01_f" ] && [ -r "$_ds01_f" ]; then
        while IFS= read -r _ds01_l || [ -n "$_ds01_l" ]; do printf '%s\n' "$_ds01_l"; done < "$_ds01_f"
      fi
      _ds01_f="${DS01_ANNOUNCEMENT:-/etc/ds01/announcement}"
      if [ -s "$_ds01_f" ] && [ -r "$_ds01_f" ]; then
        printf '%s\n' "ds01 announcement:"
        while IFS= read -r _ds01_l || [ -n "$_ds01_l" ]; do printf '  %s\n' "$_ds01_l"; done < "$_ds01_f"
      fi
      unset _ds01_f _ds01_l
    fi
    ;;
esac
