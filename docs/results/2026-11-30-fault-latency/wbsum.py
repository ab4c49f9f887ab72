import re,sys,json
from collections import Counter,defaultdict
d=sys.argv[1]
PID=open(d+'/pid').read().strip()
lines=open(d+'/trace.txt').read().split('\n')
ts=re.compile(r'^\s*(\S+)-(\d+)\s+\(\s*(\S+)\)\s+\[\d+\]\s+\S+\s+([\d.]+): (\w+): (.*)$')
kv=lambda s: dict(re.findall(r'(\w+)=(\S+)',s))
out={}; iv=[]
i=0
while i<len(lines):
    m=ts.match(lines[i]); i+=1
    if not m or m.group(5)!='sched_switch': continue
    comm,pid,tgid,t,ev,rest=m.groups(); t=float(t)
    a,b=rest.split(' ==> '); p=kv(a); n=kv(b)
    if tgid==PID and p['prev_comm'].startswith('wpsnap-'):
        stack=''
        if p['prev_state'].startswith('D'):
            j=i
            while j<len(lines) and '<stack trace>' not in lines[j] and j<i+3: j+=1
            fr=[]
            k=j+1
            while k<len(lines) and lines[k].strip().startswith('=>'):
                fr.append(lines[k].strip()[3:]); k+=1
            skip={'trace_event_raw_event_sched_switch','__traceiter_sched_switch','__schedule','schedule','schedule_preempt_disabled','schedule_timeout','io_schedule_timeout','io_schedule'}
            fr=[f for f in fr if f not in skip]
            stack='>'.join(fr[:3])
        out[p['prev_pid']]=(t,p['prev_state'],p['prev_comm'],stack)
    if n['next_pid'] in out:
        t0,st,c,stack=out.pop(n['next_pid']); iv.append((c,t0,t,st,stack))
r=json.load(open(d+'/run.json')); s=r['snapshot']
fs=[x for x in iv if x[0]=='wpsnap-fault']
lo=min(x[1] for x in fs); win=lo+s['protection_window_ns']/1e9
def summ(name):
    xs=[x for x in iv if x[0].startswith(name) and lo<=x[1]<=win]
    D=[x for x in xs if x[3].startswith('D')]
    st=Counter()
    for x in D: st[x[4]]+=x[2]-x[1]
    big=Counter(x[3][0] for x in xs if x[2]-x[1]>=0.016)
    return f"{name}: D {len(D)} episodes {1e3*sum(x[2]-x[1] for x in D):.1f} ms total, max {1e3*max([x[2]-x[1] for x in D] or [0]):.1f} ms; off-CPU >= 16 ms by state {dict(big)}; D time by stack (ms): { {k:round(v*1e3,1) for k,v in st.most_common(4)} }"
w=r['writer_fault_wait']['log2_ms']['counts']
th={t['thread']:t['policy'] for t in s.get('thread_priorities', s.get('threads', []))}
print(f"threads {th}; writer writes >= 16 ms: {sum(w[4:])} (max {r['writer_fault_wait']['max_ns']/1e6:.1f} ms); window {s['protection_window_ns']/1e6:.0f} ms")
print(' ',summ('wpsnap-writer')); print(' ',summ('wpsnap-fault')); print(' ',summ('wpsnap-scan')); print(' ',summ('wpsnap-sink'))
for x in iv:
    if x[0].startswith('wpsnap-writer') and lo<=x[1]<=win and x[2]-x[1]>=0.016 and x[3][0] in 'SD':
        by={}
        for nm in ('wpsnap-fault','wpsnap-scan','wpsnap-sink'):
            c=Counter()
            for y in iv:
                if y[0]==nm:
                    ov=min(y[2],x[2])-max(y[1],x[1])
                    if ov>0: c[y[3][0]]+=round(ov*1e3,1)
            by[nm[7:]]=dict(c)
        print(f"    writer {x[3][0]} {1e3*(x[2]-x[1]):.1f} ms at +{1e3*(x[1]-lo):.0f} ms; others off-CPU meanwhile (ms by state): {by}")
