package lease

// FairShare exposes fairShare to the external tests.
var FairShare = fairShare
