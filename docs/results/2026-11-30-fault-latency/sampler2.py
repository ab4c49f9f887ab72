import os,sys,time,collections
pid=sys.argv[1]; dur=float(sys.argv[2])
end=time.time()+dur
names={}
cur={}; runs=collections.defaultdict(list)
while time.time()<end:
    try: ts=os.listdir(f'/proc/{pid}/task')
    except (FileNotFoundError, ProcessLookupError): break
    now=time.monotonic()
    for t in ts:
        try:
            if t not in names: names[t]=open(f'/proc/{pid}/task/{t}/comm').read().strip()
            n=names[t]
            if not n.startswith('wpsnap-'): continue
            st=open(f'/proc/{pid}/task/{t}/stat').read().rsplit(')',1)[1].split()[0]
            wc=open(f'/proc/{pid}/task/{t}/wchan').read().strip() if st in 'SD' else st
        except (FileNotFoundError, ProcessLookupError): continue
        key=(st,wc); c=cur.get(t)
        if c and c[2]==key: cur[t]=(c[0],now,key)
        else:
            if c: runs[n].append(c)
            cur[t]=(now,now,key)
    time.sleep(0.0003)
for t,c in cur.items(): runs[names[t]].append(c)
for n in sorted(runs):
    cnt=collections.Counter(); tot=collections.Counter(); mx=collections.Counter()
    for a,b,k in runs[n]:
        if k[0] in 'SD' and b-a>=0.005: cnt[k]+=1; tot[k]+=b-a; mx[k]=max(mx[k],b-a)
    for k,v in cnt.most_common(6):
        print(f"{n}: {k[0]} {k[1]}: {v} x >= 5 ms, {tot[k]*1e3:.0f} ms, longest {mx[k]*1e3:.0f} ms")
# writer handle_userfault waits >= 10 ms: what were the others doing
w=[r for n,rs in runs.items() if n.startswith('wpsnap-writer') for r in rs if r[2]==('S','handle_userfault') and r[1]-r[0]>=0.010]
for a,b,k in w:
    o={}
    for n in ('wpsnap-fault','wpsnap-scan','wpsnap-sink'):
        c=collections.Counter()
        for x,y,kk in runs.get(n,[]):
            ov=min(y,b)-max(x,a)
            if ov>0: c[kk[0]+':'+kk[1]]+=round(ov*1e3,1)
        o[n[7:]]=dict(c.most_common(3))
    print(f"writer in handle_userfault {1e3*(b-a):.0f} ms; meanwhile (ms): {o}")
