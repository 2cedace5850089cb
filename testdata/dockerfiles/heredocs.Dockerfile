# syntax=docker/dockerfile:1
FROM busybox
RUN <<EOF
echo one
echo two
EOF
RUN <<-A cat >/a && <<B cat >/b
	tab-indented
	A
plain $HOME
B
COPY <<'EOF' <<DATA /etc/
literal $HOME
EOF
expanded $HOME
DATA
RUN python3 <<PY
print("hi")
PY
