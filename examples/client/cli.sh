export STREAMS_URL=http://127.0.0.1:8787   # or --url; STREAMS_TOKEN (or --token) when the Worker requires one
npx streams append /cli/demo '{"type":"app/hello","payload":{"n":1}}'
printf '%s\n' '{"type":"app/a"}' '{"type":"app/b"}' | npx streams append /cli/demo   # one event per line, one batch
npx streams get /cli/demo --from 2              # JSON lines: offsets 3, 4, 5
npx streams get /cli/demo --offset 99           # stderr: streams: not_found: No stream event found at offset 99. (exit 5)
npx streams state /cli/demo
npx streams tail /cli/demo --from 0 --types app/hello   # follows live until Ctrl-C
