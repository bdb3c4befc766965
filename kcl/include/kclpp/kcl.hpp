#pragma once
// Umbrella header for the MultiLangDaemon protocol, both sides.

#include "kclpp/kcl/child_process.hpp"
#include "kclpp/kcl/run.hpp"
#include "kclpp/processor.hpp"
