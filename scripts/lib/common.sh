# Shared by upload.sh, status.sh and download.sh (sourced, not run). Pure bash: no jq, sed or awk.

# urlencode TEXT: percent-encodes everything outside the unreserved characters.
urlencode() {
  local LC_ALL=C s=$1 out="" c i
  for (( i = 0; i < ${#s}; i++ )); do
    c=${s:i:1}
    case "$c" in
      [a-zA-Z0-9.~_-]) out+=$c ;;
      *) printf -v c '%%%02X' "'$c"; out+=$c ;;
    esac
  done
  printf '%s' "$out"
}

# json_number JSON KEY / json_string JSON KEY: first top-level-looking match; enough for the server's flat objects.
json_number() { [[ $1 =~ \"$2\"[[:space:]]*:[[:space:]]*(-?[0-9]+) ]] && printf '%s' "${BASH_REMATCH[1]}"; }
json_string() { [[ $1 =~ \"$2\"[[:space:]]*:[[:space:]]*\"(([^\"\\]|\\.)*)\" ]] && printf '%s' "${BASH_REMATCH[1]}"; }

# json_escape TEXT: TEXT as the inside of a JSON string (quote, backslash and control characters escaped; UTF-8 kept).
json_escape() {
  local LC_ALL=C s=$1 out="" c i
  for (( i = 0; i < ${#s}; i++ )); do
    c=${s:i:1}
    case "$c" in
      '"'|'\') out+="\\$c" ;;
      [[:cntrl:]]) printf -v c '\\u%04X' "'$c"; out+=$c ;;
      *) out+=$c ;;
    esac
  done
  printf '%s' "$out"
}
