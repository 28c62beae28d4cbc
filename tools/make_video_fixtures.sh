#!/usr/bin/env bash
# Makes the videos this repository adds to the shared set (MOV and MKV containers, AV1), from the
# shared videos (CC-BY-4.0, see fixtures/SOURCES.md §3), and their golden key frame times with
# ffprobe, the way fixtures/golden/videos.json was made. Needs the Debian 12 ffmpeg (5.1).
#   bash tools/make_video_fixtures.sh
set -euo pipefail
cd "$(dirname "$0")/../fixtures"
ffmpeg -v error -y -i videos/h264_portrait_rot90_360x640.mp4 -c copy -map_metadata 0 \
  videos/h264_portrait_rot90_360x640.mov
ffmpeg -v error -y -i videos/hevc_720p25_gop50.mp4 -vf scale=320:180 -c:v libaom-av1 \
  -cpu-used 8 -crf 40 -g 50 -keyint_min 50 -pix_fmt yuv420p -an -fflags +bitexact \
  videos/av1_320x180_gop50.mkv
# Packets flagged K (libdav1d, like VP9's decoder, ignores -skip_frame nokey).
keys() {
  ffprobe -v error -select_streams v -show_entries packet=pts_time,flags -of csv=p=0 "$1" \
    | awk -F, '$2 ~ /K/ { print $1 + 0 }' | sort -g | paste -sd, -
}
size() {
  ffprobe -v error -select_streams v -show_entries stream=codec_name,width,height -of csv=p=0 "$1"
}
{
  echo '{'
  echo ' "keyframe_command": "ffprobe -select_streams v -show_entries packet=pts_time,flags FILE (packets flagged K)",'
  echo " \"ffprobe\": \"$(ffprobe -version | head -1)\","
  echo ' "videos": ['
  first=1
  for f in videos/h264_portrait_rot90_360x640.mov videos/av1_320x180_gop50.mkv; do
    IFS=, read -r codec w h <<<"$(size "$f")"
    [ $first -eq 1 ] || echo '  ,'
    first=0
    echo "  {\"file\": \"$f\", \"codec\": \"$codec\", \"width\": $w, \"height\": $h, \"keyframe_pts_time\": [$(keys "$f")]}"
  done
  echo ' ]'
  echo '}'
} > golden/videos_local.json
cat golden/videos_local.json
