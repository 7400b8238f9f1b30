# Drives the gateway's offline mode: N requests over T keep-alive connections; prints RSS.
import http.client, threading, sys, time, json
N = int(sys.argv[1]); T = int(sys.argv[2]); pid = sys.argv[3]; port = int(sys.argv[4]) if len(sys.argv) > 4 else 8080
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"): return line.split()[1] + " kB"
body = json.dumps({"model": "gpt-kit", "input": "hi", "stream": True})
done = [0]; lock = threading.Lock(); transports = {}
def worker(n):
    c = http.client.HTTPConnection("127.0.0.1", port)
    for _ in range(n):
        c.request("POST", "/v1/responses", body, {"content-type": "application/json", "authorization": "Bearer sk-demo"})
        r = c.getresponse(); r.read()
        t = r.getheader("x-wsfirst-transport")
        with lock: transports[t] = transports.get(t, 0) + 1
worker(1)
print("after 1 request:", rss(), flush=True)
start = time.time()
ts = [threading.Thread(target=worker, args=(N // T,)) for _ in range(T)]
[t.start() for t in ts]
step = 0
while any(t.is_alive() for t in ts):
    time.sleep(10); step += 1
    print(f"t={step*10}s", rss(), dict(transports), flush=True)
[t.join() for t in ts]
print(f"after {N} more requests in {time.time()-start:.0f}s:", rss(), dict(transports), flush=True)
