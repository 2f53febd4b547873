package main

// The node and pod simulator: what a kubelet would report, without containers.
//
// It registers a few Ready nodes, and for every pod the scheduler binds to one
// of them it reports the pod's life: containers start after a short delay and
// become Ready; pods that run to completion (Job pods, restartPolicy Never or
// OnFailure) then succeed; pods being deleted are released at once. The
// annotation `testenv.berth.io/fault` on a pod (usually set on a pod template)
// makes it misbehave instead, so that Degraded and Progressing health can be
// tested against real controllers.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

const (
	// FaultAnnotation selects a simulated failure for a pod.
	FaultAnnotation = "testenv.berth.io/fault"
	// ReadyDelayAnnotation overrides, for one pod, how long its containers
	// take to start (a Go duration such as "3s").
	ReadyDelayAnnotation = "testenv.berth.io/ready-delay"

	faultCrashLoop      = "CrashLoopBackOff"
	faultImagePull      = "ImagePullBackOff"
	faultNeverReady     = "NeverReady"
	faultFailed         = "Failed"
	nodePrefix          = "testenv-node-"
	maxCrashLoopBackOff = 5 * time.Minute
)

type simulator struct {
	client kubernetes.Interface
	nodes  int
	delay  time.Duration
	queue  workqueue.TypedRateLimitingInterface[string]
	nextIP atomic.Uint32
	// started records when each pod (by UID) was first seen bound, which is
	// when its simulated containers began to start.
	mu      sync.Mutex
	started map[types.UID]time.Time
	pods    cache.Indexer
}

func newSimulator(client kubernetes.Interface, nodes int, delay time.Duration) *simulator {
	return &simulator{
		client:  client,
		nodes:   nodes,
		delay:   delay,
		queue:   workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		started: map[types.UID]time.Time{},
	}
}

// run registers the nodes, then simulates pods until ctx is done.
func (s *simulator) run(ctx context.Context) error {
	if err := s.registerNodes(ctx); err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactory(s.client, 0)
	informer := factory.Core().V1().Pods().Informer()
	s.pods = informer.GetIndexer()
	enqueue := func(obj interface{}) {
		if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			s.queue.Add(key)
		}
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj interface{}) { enqueue(obj) },
		DeleteFunc: func(obj interface{}) {
			if pod, ok := obj.(*corev1.Pod); ok {
				s.mu.Lock()
				delete(s.started, pod.UID)
				s.mu.Unlock()
			}
		},
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	for i := 0; i < 4; i++ {
		go func() {
			for s.processNext(ctx) {
			}
		}()
	}
	<-ctx.Done()
	s.queue.ShutDown()
	return nil
}

// registerNodes creates the simulated nodes and reports them Ready.
func (s *simulator) registerNodes(ctx context.Context) error {
	for i := 0; i < s.nodes; i++ {
		name := fmt.Sprintf("%s%d", nodePrefix, i)
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Labels: map[string]string{
				"kubernetes.io/hostname":           name,
				"kubernetes.io/os":                 "linux",
				"kubernetes.io/arch":               "amd64",
				"node.kubernetes.io/instance-type": "testenv",
				"type":                             "testenv-simulated",
			},
		}}
		if _, err := s.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("register node %s: %w", name, err)
		}
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			n, err := s.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			now := metav1.Now()
			capacity := corev1.ResourceList{
				corev1.ResourceCPU:              resource.MustParse("32"),
				corev1.ResourceMemory:           resource.MustParse("256Gi"),
				corev1.ResourcePods:             resource.MustParse("1000"),
				corev1.ResourceEphemeralStorage: resource.MustParse("1Ti"),
			}
			n.Status = corev1.NodeStatus{
				Capacity:    capacity,
				Allocatable: capacity,
				Phase:       corev1.NodeRunning,
				Conditions: []corev1.NodeCondition{
					{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "simulated by berth-testenv", LastHeartbeatTime: now, LastTransitionTime: now},
					{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", LastHeartbeatTime: now, LastTransitionTime: now},
					{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", LastHeartbeatTime: now, LastTransitionTime: now},
					{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID", LastHeartbeatTime: now, LastTransitionTime: now},
				},
				Addresses: []corev1.NodeAddress{
					{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("10.89.0.%d", i+2)},
					{Type: corev1.NodeHostName, Address: name},
				},
				NodeInfo: corev1.NodeSystemInfo{
					Architecture: "amd64", OperatingSystem: "linux", KubeletVersion: "v1.34.4-testenv",
					ContainerRuntimeVersion: "simulated://1", OSImage: "berth-testenv",
				},
			}
			_, err = s.client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			return fmt.Errorf("report node %s ready: %w", name, err)
		}
		// The TaintNodesByCondition admission plugin marks new nodes
		// not-ready; the node lifecycle controller would lift that once the
		// node reports Ready, but it is off here, so we lift it ourselves.
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			n, err := s.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			var kept []corev1.Taint
			for _, t := range n.Spec.Taints {
				if !strings.HasPrefix(t.Key, "node.kubernetes.io/") {
					kept = append(kept, t)
				}
			}
			if len(kept) == len(n.Spec.Taints) {
				return nil
			}
			n.Spec.Taints = kept
			_, err = s.client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			return fmt.Errorf("untaint node %s: %w", name, err)
		}
	}
	return nil
}

func (s *simulator) processNext(ctx context.Context) bool {
	key, quit := s.queue.Get()
	if quit {
		return false
	}
	defer s.queue.Done(key)
	if err := s.sync(ctx, key); err != nil {
		if ctx.Err() == nil {
			klog.V(2).InfoS("simulator: retrying pod", "pod", key, "err", err)
		}
		s.queue.AddRateLimited(key)
		return true
	}
	s.queue.Forget(key)
	return true
}

// sync moves one pod one step along its simulated life.
func (s *simulator) sync(ctx context.Context, key string) error {
	obj, exists, err := s.pods.GetByKey(key)
	if err != nil || !exists {
		return err
	}
	pod := obj.(*corev1.Pod)
	if !strings.HasPrefix(pod.Spec.NodeName, nodePrefix) {
		return nil
	}
	if pod.DeletionTimestamp != nil {
		// A kubelet confirms the deletion once containers have stopped; ours
		// stop at once.
		zero := int64(0)
		err := s.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
			GracePeriodSeconds: &zero,
			Preconditions:      &metav1.Preconditions{UID: &pod.UID},
		})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return err
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return nil
	}

	s.mu.Lock()
	start, seen := s.started[pod.UID]
	if !seen {
		start = time.Now()
		if pod.Status.StartTime != nil {
			start = pod.Status.StartTime.Time
		}
		s.started[pod.UID] = start
	}
	s.mu.Unlock()

	delay := s.delay
	if v, ok := pod.Annotations[ReadyDelayAnnotation]; ok {
		if d, err := time.ParseDuration(v); err == nil && d >= 0 {
			delay = d
		}
	}
	fault := pod.Annotations[FaultAnnotation]
	elapsed := time.Since(start)

	status := pod.Status.DeepCopy()
	s.baseStatus(pod, status, start)
	var requeue time.Duration

	switch {
	case elapsed < delay:
		setContainers(pod, status, func(c corev1.Container) corev1.ContainerStatus {
			return waiting(c, "ContainerCreating", "")
		})
		status.Phase = corev1.PodPending
		setReady(status, false, "ContainersNotReady")
		requeue = delay - elapsed
	case fault == faultImagePull:
		setContainers(pod, status, func(c corev1.Container) corev1.ContainerStatus {
			return waiting(c, "ImagePullBackOff", fmt.Sprintf("Back-off pulling image %q (simulated by %s)", c.Image, FaultAnnotation))
		})
		status.Phase = corev1.PodPending
		setReady(status, false, "ContainersNotReady")
	case fault == faultCrashLoop:
		restarts := crashRestarts(elapsed - delay)
		setContainers(pod, status, func(c corev1.Container) corev1.ContainerStatus {
			cs := waiting(c, "CrashLoopBackOff", fmt.Sprintf("back-off restarting failed container %s (simulated by %s)", c.Name, FaultAnnotation))
			cs.RestartCount = restarts
			cs.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 1, Reason: "Error", StartedAt: metav1.NewTime(start), FinishedAt: metav1.NewTime(start.Add(delay)),
			}}
			return cs
		})
		status.Phase = corev1.PodRunning
		setReady(status, false, "ContainersNotReady")
		requeue = nextCrash(elapsed - delay)
	case fault == faultFailed:
		setContainers(pod, status, func(c corev1.Container) corev1.ContainerStatus {
			return terminated(c, 1, "Error", start, time.Now())
		})
		status.Phase = corev1.PodFailed
		setReady(status, false, "PodFailed")
	case fault == faultNeverReady:
		setContainers(pod, status, func(c corev1.Container) corev1.ContainerStatus {
			return running(c, start.Add(delay), false)
		})
		status.Phase = corev1.PodRunning
		setReady(status, false, "ContainersNotReady")
	case runsToCompletion(pod) && elapsed >= 2*delay:
		setContainers(pod, status, func(c corev1.Container) corev1.ContainerStatus {
			return terminated(c, 0, "Completed", start.Add(delay), time.Now())
		})
		status.Phase = corev1.PodSucceeded
		setReady(status, false, "PodCompleted")
	default:
		setContainers(pod, status, func(c corev1.Container) corev1.ContainerStatus {
			return running(c, start.Add(delay), true)
		})
		status.Phase = corev1.PodRunning
		setReady(status, true, "")
		if runsToCompletion(pod) {
			requeue = 2*delay - elapsed
		}
	}
	if fault != "" && fault != faultImagePull && fault != faultCrashLoop && fault != faultFailed && fault != faultNeverReady {
		klog.InfoS("simulator: unknown fault, pod runs normally", "pod", key, "fault", fault)
	}
	if requeue > 0 {
		s.queue.AddAfter(key, requeue)
	}
	if statusEqual(&pod.Status, status) {
		return nil
	}
	updated := pod.DeepCopy()
	updated.Status = *status
	_, err = s.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// baseStatus fills what a kubelet reports as soon as it admits a pod.
func (s *simulator) baseStatus(pod *corev1.Pod, st *corev1.PodStatus, start time.Time) {
	if st.StartTime == nil {
		t := metav1.NewTime(start)
		st.StartTime = &t
	}
	if st.HostIP == "" {
		idx := strings.TrimPrefix(pod.Spec.NodeName, nodePrefix)
		var n int
		fmt.Sscanf(idx, "%d", &n)
		st.HostIP = fmt.Sprintf("10.89.0.%d", n+2)
		st.HostIPs = []corev1.HostIP{{IP: st.HostIP}}
	}
	if st.PodIP == "" {
		if pod.Spec.HostNetwork {
			st.PodIP = st.HostIP
		} else {
			n := s.nextIP.Add(1)
			st.PodIP = fmt.Sprintf("10.244.%d.%d", (n/250)%250, n%250+1)
		}
		st.PodIPs = []corev1.PodIP{{IP: st.PodIP}}
	}
	if st.QOSClass == "" {
		st.QOSClass = corev1.PodQOSBestEffort
	}
	setCondition(st, corev1.PodScheduled, true, "")
	setCondition(st, corev1.PodInitialized, true, "")
	st.InitContainerStatuses = nil
	for _, ic := range pod.Spec.InitContainers {
		st.InitContainerStatuses = append(st.InitContainerStatuses, terminated(ic, 0, "Completed", start, start))
	}
}

func runsToCompletion(pod *corev1.Pod) bool {
	return pod.Spec.RestartPolicy == corev1.RestartPolicyNever || pod.Spec.RestartPolicy == corev1.RestartPolicyOnFailure
}

// crashRestarts is how many restarts a kubelet would have made after d,
// backing off 10s, 20s, 40s ... up to five minutes between restarts.
func crashRestarts(d time.Duration) int32 {
	var n int32
	var t time.Duration
	step := 10 * time.Second
	for {
		t += step
		if t > d {
			return n + 1
		}
		n++
		if step < maxCrashLoopBackOff {
			step *= 2
			if step > maxCrashLoopBackOff {
				step = maxCrashLoopBackOff
			}
		}
	}
}

// nextCrash is the time until the next simulated restart after d.
func nextCrash(d time.Duration) time.Duration {
	var t time.Duration
	step := 10 * time.Second
	for {
		t += step
		if t > d {
			return t - d
		}
		if step < maxCrashLoopBackOff {
			step *= 2
			if step > maxCrashLoopBackOff {
				step = maxCrashLoopBackOff
			}
		}
	}
}

func setContainers(pod *corev1.Pod, st *corev1.PodStatus, f func(corev1.Container) corev1.ContainerStatus) {
	st.ContainerStatuses = st.ContainerStatuses[:0:0]
	for _, c := range pod.Spec.Containers {
		st.ContainerStatuses = append(st.ContainerStatuses, f(c))
	}
}

func imageID(c corev1.Container) string { return "simulated://" + c.Image }

func waiting(c corev1.Container, reason, msg string) corev1.ContainerStatus {
	return corev1.ContainerStatus{
		Name: c.Name, Image: c.Image,
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}},
	}
}

func running(c corev1.Container, since time.Time, ready bool) corev1.ContainerStatus {
	started := true
	return corev1.ContainerStatus{
		Name: c.Name, Image: c.Image, ImageID: imageID(c), ContainerID: "simulated://" + c.Name,
		Ready: ready, Started: &started,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(since)}},
	}
}

func terminated(c corev1.Container, code int32, reason string, from, to time.Time) corev1.ContainerStatus {
	started := false
	return corev1.ContainerStatus{
		Name: c.Name, Image: c.Image, ImageID: imageID(c), ContainerID: "simulated://" + c.Name,
		Started: &started,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: code, Reason: reason, StartedAt: metav1.NewTime(from), FinishedAt: metav1.NewTime(to),
		}},
	}
}

func setReady(st *corev1.PodStatus, ready bool, reason string) {
	setCondition(st, corev1.ContainersReady, ready, reason)
	setCondition(st, corev1.PodReady, ready, reason)
}

func setCondition(st *corev1.PodStatus, typ corev1.PodConditionType, ok bool, reason string) {
	status := corev1.ConditionFalse
	if ok {
		status = corev1.ConditionTrue
		reason = ""
	}
	for i := range st.Conditions {
		if st.Conditions[i].Type == typ {
			if st.Conditions[i].Status != status {
				st.Conditions[i].Status = status
				st.Conditions[i].LastTransitionTime = metav1.Now()
			}
			st.Conditions[i].Reason = reason
			return
		}
	}
	st.Conditions = append(st.Conditions, corev1.PodCondition{Type: typ, Status: status, Reason: reason, LastTransitionTime: metav1.Now()})
}

// statusEqual compares what the simulator sets, ignoring timestamps that it
// would otherwise rewrite on every pass.
func statusEqual(a, b *corev1.PodStatus) bool {
	if a.Phase != b.Phase || a.PodIP != b.PodIP || a.HostIP != b.HostIP || len(a.Conditions) != len(b.Conditions) ||
		len(a.ContainerStatuses) != len(b.ContainerStatuses) || len(a.InitContainerStatuses) != len(b.InitContainerStatuses) {
		return false
	}
	for i := range a.Conditions {
		if a.Conditions[i].Type != b.Conditions[i].Type || a.Conditions[i].Status != b.Conditions[i].Status {
			return false
		}
	}
	for i := range a.ContainerStatuses {
		x, y := a.ContainerStatuses[i], b.ContainerStatuses[i]
		if x.Ready != y.Ready || x.RestartCount != y.RestartCount || stateName(x.State) != stateName(y.State) {
			return false
		}
	}
	return true
}

func stateName(s corev1.ContainerState) string {
	switch {
	case s.Running != nil:
		return "running"
	case s.Terminated != nil:
		return "terminated/" + s.Terminated.Reason
	case s.Waiting != nil:
		return "waiting/" + s.Waiting.Reason
	}
	return ""
}
